// test_host_watchdog.cpp — the collective watchdog that ends a data-parallel rank whose collectives stopped
// completing (the NCCL backend's --collective-timeout; host/collective_watchdog.h).
#include <chrono>
#include <cstdio>
#include <thread>

#include <gtest/gtest.h>

#include "host/collective_watchdog.h"

// No progress within the timeout: the abort hook runs, one line names the rank and the timeout, exit code 2.
TEST(CollectiveWatchdog, NoProgressAbortsAndExitsTwo) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        llm::CollectiveWatchdog dog;
        dog.start(0.2, 3, [] { std::fprintf(stderr, "backend abort ran\n"); });
        std::this_thread::sleep_for(std::chrono::seconds(30));  // the watchdog must end the process long before
        std::exit(0);
      },
      ::testing::ExitedWithCode(2),
      "rank 3: no collective completed for [0-9]+ s \\(--collective-timeout 0.2 s\\)(.|\n)*backend abort ran");
}

// Progress more often than the timeout keeps the process alive; stop() ends the thread (no exit).
TEST(CollectiveWatchdog, ProgressKeepsItAliveAndStopEndsIt) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        llm::CollectiveWatchdog dog;
        bool fired = false;
        // 2 s timeout, progress every 20 ms for 3 s: a late wake-up of a loaded machine is still far inside it
        dog.start(2.0, 0, [&] { fired = true; });
        for (int i = 0; i < 150; i++) {
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
          dog.progress();
        }
        dog.stop();
        std::exit(fired ? 1 : 7);
      },
      ::testing::ExitedWithCode(7), "");
}
