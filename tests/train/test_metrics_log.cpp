#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "nibble/train/metrics_log.h"
#include "train_test_util.h"

namespace nibble {
namespace {

using Json = nlohmann::ordered_json;

// The records of a short run: a train line every step, an eval line at steps 3 and 6.
std::vector<Json> run_records(int steps) {
  std::vector<Json> records;
  for (int step = 1; step <= steps; ++step) {
    records.push_back(
        Json{{"step", step}, {"epoch", step / 6.0}, {"loss", 3.0 / step}, {"learning_rate", 2e-4 * step}});
    if (step % 3 == 0) records.push_back(Json{{"step", step}, {"eval_loss", 2.5 / step}});
  }
  return records;
}

TEST(MetricsLog, OneLinePerRecordAsPythonWritesIt) {
  test::ScratchDir dir;
  {
    MetricsLog log = MetricsLog::create(dir / "metrics.jsonl");
    log.write(Json{{"step", 1}, {"loss", 2.5}, {"learning_rate", 2e-05}, {"tag", "a"}});
    log.write(Json{{"step", 2}, {"loss", std::numeric_limits<double>::quiet_NaN()},
                   {"grad_norm", std::numeric_limits<double>::infinity()}});
  }
  EXPECT_EQ(test::read_bytes(dir / "metrics.jsonl"),
            "{\"step\": 1, \"loss\": 2.5, \"learning_rate\": 2e-05, \"tag\": \"a\"}\n"
            "{\"step\": 2, \"loss\": null, \"grad_norm\": null}\n");
  test::expect_error([] { metrics_line(Json::array({1})); }, {"JSON object"});
}

TEST(MetricsLog, FloatsReadBackBitForBit) {
  test::ScratchDir dir;
  const double values[] = {0.1 + 0.2, 1.0 / 3.0, 1e-300, 2.2250738585072014e-308, 123456789.123456789,
                           6.103515625e-05, -0.0, 5e-324, 1.7976931348623157e308};
  {
    MetricsLog log = MetricsLog::create(dir / "m.jsonl");
    for (double v : values) log.write(Json{{"loss", v}});
  }
  const std::vector<Json> records = read_metrics_log(dir / "m.jsonl");
  ASSERT_EQ(records.size(), std::size(values));
  for (size_t i = 0; i < records.size(); ++i) {
    const double back = records[i].at("loss").get<double>();
    EXPECT_EQ(std::memcmp(&back, &values[i], sizeof(double)), 0) << values[i];
  }
}

TEST(MetricsLog, ResumeCutsBackSoTheLogEqualsAnUninterruptedRun) {
  test::ScratchDir dir;
  const std::vector<Json> records = run_records(8);
  {
    MetricsLog log = MetricsLog::create(dir / "full.jsonl");
    for (const Json& r : records) log.write(r);
  }
  // Killed after step 7 (and mid-way through a line), resumed from the checkpoint of step 6.
  {
    MetricsLog log = MetricsLog::create(dir / "resumed.jsonl");
    for (const Json& r : records)
      if (r.at("step").get<int>() <= 7) log.write(r);
  }
  {
    std::string torn = test::read_bytes(dir / "resumed.jsonl") + "{\"step\": 8, \"lo";
    test::write_bytes(dir / "resumed.jsonl", torn);
  }
  {
    MetricsLog log = MetricsLog::resume(dir / "resumed.jsonl", 6);
    // The eval line of step 6 was logged before the checkpoint, so it stays.
    EXPECT_EQ(read_metrics_log(dir / "resumed.jsonl").back(), records[7]);
    for (const Json& r : records)
      if (r.at("step").get<int>() > 6) log.write(r);
  }
  EXPECT_EQ(test::read_bytes(dir / "resumed.jsonl"), test::read_bytes(dir / "full.jsonl"));

  // Resuming a run that never logged starts an empty file.
  MetricsLog::resume(dir / "new.jsonl", 10);
  EXPECT_EQ(test::read_bytes(dir / "new.jsonl"), "");
}

TEST(MetricsLog, ABadCompleteLineIsAnErrorNamingPathAndLine) {
  test::ScratchDir dir;
  test::write_bytes(dir / "m.jsonl", "{\"step\": 1}\n\nnot json\n{\"step\": 2}\n");
  test::expect_error([&] { read_metrics_log(dir / "m.jsonl"); }, {dir / "m.jsonl" + ":3", "not a JSON object"});
  test::expect_error([&] { MetricsLog::resume(dir / "m.jsonl", 1); }, {dir / "m.jsonl" + ":3"});
  test::write_bytes(dir / "array.jsonl", "[1, 2]\n");
  test::expect_error([&] { read_metrics_log(dir / "array.jsonl"); }, {":1"});
}

TEST(MetricsLog, ReadsPythonsNonFiniteNumbersAsNull) {
  test::ScratchDir dir;
  test::write_bytes(dir / "peer.jsonl",
                    "{\"step\": 1, \"loss\": NaN, \"grad_norm\": Infinity, \"x\": -Infinity, "
                    "\"note\": \"NaN \\\" Infinity\"}\n"
                    "{\"step\": 2, \"loss\": 1.5}");  // no newline at the end, as some writers leave it
  const std::vector<Json> r = read_metrics_log(dir / "peer.jsonl");
  ASSERT_EQ(r.size(), 2u);
  EXPECT_TRUE(r[0].at("loss").is_null());
  EXPECT_TRUE(r[0].at("grad_norm").is_null());
  EXPECT_TRUE(r[0].at("x").is_null());
  EXPECT_EQ(r[0].at("note"), "NaN \" Infinity");
  EXPECT_EQ(r[1].at("loss"), 1.5);
}

TEST(MetricsLog, AFailedWriteLeavesNoTornLine) {
  test::ScratchDir dir;
  MetricsLog log = MetricsLog::create(dir / "m.jsonl");
  const Json record{{"step", 1}, {"loss", 1.25}, {"padding", std::string(20, 'x')}};
  const size_t line = metrics_line(record).size() + 1;
  bool failed = false;
  test::with_file_size_limit(static_cast<rlim_t>(2 * line + line / 2), [&] {
    try {
      for (int i = 0; i < 4; ++i) log.write(record);
    } catch (const Error& e) {
      failed = true;
      EXPECT_NE(std::string(e.what()).find(dir / "m.jsonl"), std::string::npos) << e.what();
    }
  });
  EXPECT_TRUE(failed);
  // Two whole lines; the third, cut by the limit, was taken back off.
  EXPECT_EQ(test::read_bytes(dir / "m.jsonl").size(), 2 * line);
  EXPECT_EQ(read_metrics_log(dir / "m.jsonl").size(), 2u);
}

}  // namespace
}  // namespace nibble
