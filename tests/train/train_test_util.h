// Helpers shared by the train tests: the io tests' scratch folder and error matcher, and a
// file-size limit that makes writes fail part-way as a full disk would.
#pragma once

#include <signal.h>
#include <sys/resource.h>

#include <functional>

#include "../io/io_test_util.h"

namespace nibble::test {

// Runs `body` with writes limited to `bytes` per file (EFBIG past it, as ENOSPC on a full disk;
// SIGXFSZ ignored so the process lives to report it).
inline void with_file_size_limit(rlim_t bytes, const std::function<void()>& body) {
  struct Restore {
    struct rlimit saved;
    void (*handler)(int);
    ~Restore() {
      setrlimit(RLIMIT_FSIZE, &saved);
      signal(SIGXFSZ, handler);
    }
  };
  Restore restore;
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &restore.saved), 0);
  restore.handler = signal(SIGXFSZ, SIG_IGN);
  struct rlimit limited = restore.saved;
  limited.rlim_cur = bytes;
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &limited), 0);
  body();
}

}  // namespace nibble::test
