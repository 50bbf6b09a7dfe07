#include <gtest/gtest.h>

#include <cstdio>

#include "nibble/train/train_progress.h"

namespace nibble {
namespace {

// What a TrainProgress wrote into a temporary file.
class Capture {
 public:
  Capture() : file_(std::tmpfile()) {}
  ~Capture() { std::fclose(file_); }
  std::FILE* file() { return file_; }
  std::string text() {
    std::fflush(file_);
    std::rewind(file_);
    std::string out;
    char buffer[4096];
    size_t n;
    while ((n = std::fread(buffer, 1, sizeof buffer, file_)) > 0) out.append(buffer, n);
    return out;
  }

 private:
  std::FILE* file_;
};

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST(TrainProgress, LineFormat) {
  TrainProgressStats s;
  s.step = 120;
  s.loss = 1.23456;
  s.learning_rate = 1.96e-4;
  s.tokens_per_second = 2345.4;
  s.gpu_allocated_bytes = static_cast<int64_t>(5.21 * 1073741824.0);
  s.gpu_peak_bytes = static_cast<int64_t>(6.02 * 1073741824.0) + 1;
  EXPECT_EQ(format_train_progress(s, 1000, 125.0, 920.0),
            "step 120/1000 [#         ] loss 1.2346 | lr 1.96e-04 | 2345 tok/s | GPU 5.21/6.02 GiB | "
            "2m05s, ETA 15m20s");
  s.gpu_allocated_bytes = -1;  // on the CPU
  s.step = 1000;
  EXPECT_EQ(format_train_progress(s, 1000, 7.0, -1.0),
            "step 1000/1000 [##########] loss 1.2346 | lr 1.96e-04 | 2345 tok/s | 7s");
}

TEST(TrainProgress, Durations) {
  EXPECT_EQ(format_duration(0.4), "0s");
  EXPECT_EQ(format_duration(59.4), "59s");
  EXPECT_EQ(format_duration(60), "1m00s");
  EXPECT_EQ(format_duration(3599), "59m59s");
  EXPECT_EQ(format_duration(3600 * 2 + 5 * 60 + 10), "2h05m");
  EXPECT_EQ(format_duration(86400 * 3 + 3600 * 4), "3d04h");
  EXPECT_EQ(format_duration(-1), "?");
}

TEST(TrainProgress, OffATerminalAPlainLineEveryLoggingStepsAndAtTheEnd) {
  Capture out;
  TrainProgress progress(25, 10, 0, out.file(), /*terminal=*/false);
  for (int step = 1; step <= 25; ++step) progress.update(TrainProgressStats{step, 1.0, 1e-4, 100.0, -1, -1});
  progress.message("saved checkpoint-25");
  progress.finish();
  const std::string text = out.text();
  EXPECT_EQ(count(text, "\n"), 4u) << text;
  EXPECT_EQ(count(text, "\r"), 0u);
  EXPECT_NE(text.find("step 10/25"), std::string::npos);
  EXPECT_NE(text.find("step 20/25"), std::string::npos);
  EXPECT_NE(text.find("step 25/25"), std::string::npos);
  EXPECT_EQ(text.find("step 11/25"), std::string::npos);
  EXPECT_NE(text.find("saved checkpoint-25\n"), std::string::npos);
}

TEST(TrainProgress, OnATerminalRedrawnInPlaceAtMostTenTimesASecond) {
  Capture out;
  TrainProgress progress(500, 10, 0, out.file(), /*terminal=*/true);
  for (int step = 1; step <= 499; ++step) progress.update(TrainProgressStats{step, 1.0, 1e-4, 100.0, -1, -1});
  progress.message("eval loss 0.5");
  progress.update(TrainProgressStats{500, 1.0, 1e-4, 100.0, -1, -1});
  progress.finish();
  const std::string text = out.text();
  // The loop above takes far less than 100 ms: the first step draws, the rest wait, the message
  // redraws the line under it, the last step is always drawn.
  EXPECT_LE(count(text, "\r\033[2K") , 6u) << text;
  EXPECT_NE(text.find("step 1/500"), std::string::npos);
  EXPECT_EQ(text.find("step 2/500"), std::string::npos);
  EXPECT_NE(text.find("eval loss 0.5\n"), std::string::npos);
  // The last line stays on screen and ends the output.
  const std::string tail = "step 500/500 [##########] loss 1.0000 | lr 1.00e-04 | 100 tok/s | ";
  EXPECT_NE(text.rfind(tail), std::string::npos);
  EXPECT_EQ(text.back(), '\n');
  EXPECT_GT(text.rfind(tail), text.rfind("\r\033[2K"));
}

TEST(TrainProgress, EtaCountsOnlyStepsRunHere) {
  Capture out;
  TrainProgress progress(200, 1, 100, out.file(), /*terminal=*/false);
  progress.update(TrainProgressStats{100, 1.0, 1e-4, 0.0, -1, -1});
  EXPECT_EQ(out.text().find("ETA"), std::string::npos);  // nothing run yet here: unknown
  progress.update(TrainProgressStats{101, 1.0, 1e-4, 0.0, -1, -1});
  // One step in microseconds, 99 to go: an ETA of 0s, not the time of 101 steps.
  EXPECT_NE(out.text().find("ETA 0s"), std::string::npos) << out.text();
}

}  // namespace
}  // namespace nibble
