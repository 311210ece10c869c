// Lets libraries whose folders are still empty build as targets.
