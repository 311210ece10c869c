// placeholder: implemented by the kernels work in progress
