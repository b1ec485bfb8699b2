// MpiComm's collectives against closed-form expectations, run by ctest as `mpiexec -n 3 test_dp_mpi` (label dp).
// Every rank runs every test with rank-dependent inputs; a failure on any rank fails mpiexec. Three ranks so
// that shards, roots and sums are not symmetric by accident. bf16 sums are checked for round-to-nearest-even.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "host/comm_mpi.h"

namespace {

llm::Comm* g_comm = nullptr;

uint16_t bf16_bits(float f) {  // exact for the values used here (they are representable in bf16)
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return static_cast<uint16_t>(u >> 16);
}

}  // namespace

TEST(DpMpi, WorldAndRank) {
  EXPECT_EQ(g_comm->world_size(), 3);
  EXPECT_GE(g_comm->rank(), 0);
  EXPECT_LT(g_comm->rank(), 3);
}

// 1001 elements: MPI_Allreduce; 1002 (a multiple of 3): reduce-scatter + all-gather.
TEST(DpMpi, AllReduceSumFp32) {
  const int r = g_comm->rank();
  for (size_t n : {1001, 1002}) {
    std::vector<float> x(n);
    for (size_t i = 0; i < n; i++) x[i] = static_cast<float>(i) + 1000.0f * r;  // sums are exact integers
    g_comm->all_reduce_sum(x.data(), n, llm::CommType::kFp32, nullptr);
    for (size_t i = 0; i < n; i++) ASSERT_EQ(x[i], 3.0f * i + 3000.0f) << i << " of " << n;
  }
}

// The padded path adds each element in the same order as reduce_scatter_sum and gives every rank the same bits:
// with values whose sum depends on the order, all_reduce_sum equals reduce_scatter_sum + all_gather exactly.
TEST(DpMpi, PaddedAllReduceMatchesReduceScatterBitForBit) {
  const int r = g_comm->rank();
  const size_t n = 999;
  std::vector<float> a(n), b;
  for (size_t i = 0; i < n; i++) a[i] = (r == 1 ? -1.0f : 1.0f) * (1.0f + 1e-7f * i) * (r == 2 ? 1e-8f : 1.0f);
  b = a;
  g_comm->all_reduce_sum(a.data(), n, llm::CommType::kFp32, nullptr);
  g_comm->reduce_scatter_sum(b.data(), n, llm::CommType::kFp32, nullptr);
  g_comm->all_gather(b.data(), n, llm::CommType::kFp32, nullptr);
  EXPECT_EQ(std::memcmp(a.data(), b.data(), n * sizeof(float)), 0);
  // every rank holds the same bits: compare with rank 0's copy
  std::vector<float> c = a;
  g_comm->broadcast_host(c.data(), n * sizeof(float), 0);
  EXPECT_EQ(std::memcmp(a.data(), c.data(), n * sizeof(float)), 0);
}

TEST(DpMpi, AllReduceSumBf16RoundsToNearestEven) {
  const int r = g_comm->rank();
  // element 0: 1 + 2^-8 + 0       -> halfway between 1 and 1+2^-7: ties to even -> 1
  // element 1: (1+2^-7) + 2^-8 + 0 -> halfway between 1+2^-7 and 1+2^-6: ties to even -> 1+2^-6
  // element 2: 2 + 3 + 4 = 9 (exact)
  const float a[3][3] = {{1.0f, 1.0f + 0.0078125f, 2.0f}, {0.00390625f, 0.00390625f, 3.0f}, {0.0f, 0.0f, 4.0f}};
  std::vector<uint16_t> x = {bf16_bits(a[r][0]), bf16_bits(a[r][1]), bf16_bits(a[r][2])};
  g_comm->all_reduce_sum(x.data(), x.size(), llm::CommType::kBf16, nullptr);
  // MPI may add in any order; for these inputs every order rounds to the same result
  EXPECT_EQ(x[0], bf16_bits(1.0f));
  EXPECT_EQ(x[1], bf16_bits(1.0f + 0.015625f));
  EXPECT_EQ(x[2], bf16_bits(9.0f));
}

TEST(DpMpi, ReduceScatterLeavesTheSumInTheOwnShard) {
  const int r = g_comm->rank(), W = g_comm->world_size();
  const size_t n = llm::Comm::padded(10, W);  // 12: shards of 4
  ASSERT_EQ(n % W, 0u);
  std::vector<float> x(n);
  for (size_t i = 0; i < n; i++) x[i] = static_cast<float>(i * (r + 1));
  g_comm->reduce_scatter_sum(x.data(), n, llm::CommType::kFp32, nullptr);
  for (size_t i = g_comm->shard_begin(n); i < g_comm->shard_end(n); i++) EXPECT_EQ(x[i], 6.0f * i) << i;  // 1+2+3
  EXPECT_EQ(g_comm->shard_end(n) - g_comm->shard_begin(n), n / W);
}

TEST(DpMpi, AllGatherCopiesEveryShardEverywhere) {
  const int r = g_comm->rank(), W = g_comm->world_size();
  const size_t n = 3 * W;
  std::vector<uint16_t> x(n, 0xffff);  // bf16 bits move untouched
  for (size_t i = g_comm->shard_begin(n); i < g_comm->shard_end(n); i++) x[i] = static_cast<uint16_t>(100 * r + i);
  g_comm->all_gather(x.data(), n, llm::CommType::kBf16, nullptr);
  for (size_t i = 0; i < n; i++) EXPECT_EQ(x[i], 100 * (i / 3) + i) << i;
}

TEST(DpMpi, HostScalarsBroadcastAndBarrier) {
  const int r = g_comm->rank();
  EXPECT_EQ(g_comm->all_reduce_sum_host(0.5 + r), 4.5);  // 0.5 + 1.5 + 2.5
  char id[128];
  for (int i = 0; i < 128; i++) id[i] = static_cast<char>(r == 1 ? i : 0);
  g_comm->broadcast_host(id, sizeof(id), /*root=*/1);
  for (int i = 0; i < 128; i++) ASSERT_EQ(id[i], static_cast<char>(i));
  g_comm->barrier();
}

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  int rc;
  {
    llm::MpiComm comm;
    g_comm = &comm;
    rc = RUN_ALL_TESTS();
    // a rank whose test failed must not leave the others waiting in the next collective
    if (rc != 0) llm::abort_other_ranks(1);
  }
  return rc;
}
