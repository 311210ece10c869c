// Byte and call counters kept by every Communicator, one counter per collective kind.
//
// Two byte counts per call, both for THIS rank, with n = group size and e = element size:
//
//   collective                  payload_bytes (the "size" S)      bus_bytes (sent by this rank)
//   AllReduce(count)            count*e                           2*(n-1)*S/n
//   ReduceScatter(recv_count)   n*recv_count*e  (whole input)     (n-1)*S/n = (n-1)*recv_count*e
//   AllGather(send_count)       n*send_count*e  (whole output)    (n-1)*S/n = (n-1)*send_count*e
//   AllToAllV(send_counts)      sum_j send_counts[j]*e            sum_{j != rank} send_counts[j]*e
//   Broadcast(count)            count*e (every rank)              S if n > 1, else 0
//   Barrier                     0                                 0
//
// payload_bytes is the message size S as nccl-tests defines it (algbw = S / time). bus_bytes is
// what a bandwidth-optimal ring algorithm puts on the wire from each rank -- the nccl-tests "bus
// bandwidth" factor applied to S (busbw = bus_bytes / time), except that AllToAllV counts the exact
// bytes leaving this rank (which equals (n-1)*S/n for an even split). Divisions are integer
// (floor). A group of one sends nothing: bus_bytes is 0 for every collective when n == 1. These are
// model numbers, independent of the algorithm MPI or NCCL actually picks. Non-blocking variants
// count into the same counter as their blocking twin, at issue time. Failed calls are not counted.
#pragma once

#include <cstdint>
#include <string>

namespace moetrain::parallel {

struct CollectiveCounter {
  int64_t calls = 0;
  int64_t payload_bytes = 0;
  int64_t bus_bytes = 0;
};

struct CommCounters {
  CollectiveCounter all_reduce;
  CollectiveCounter reduce_scatter;
  CollectiveCounter all_gather;
  CollectiveCounter all_to_all_v;
  CollectiveCounter broadcast;
  CollectiveCounter barrier;

  int64_t TotalBusBytes() const;
  int64_t TotalPayloadBytes() const;
  // One line: "all_reduce 3 calls 1.2 MB (bus 1.8 MB), ..." listing only kinds with calls.
  std::string ToString() const;
};

}  // namespace moetrain::parallel
