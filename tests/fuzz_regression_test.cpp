// Regression tests for the gateway fuzz target: every seed of the corpus and every crash
// input the fuzzer found (tests/fuzz/regressions/) goes through the fuzz target's own harness
// (Gateway::process_frame, then the actors' handlers and the outbound turn), with its
// invariants checked and a valid Ping answered right after each input.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "fuzz/corpus.hpp"
#include "fuzz/gateway_harness.hpp"

namespace fs = std::filesystem;

namespace {

using tern::fuzz::files_in;
using tern::fuzz::fuzz_dir;

/// Runs `input` through the harness and checks the gateway answers a valid Ping after it.
void replay(tern::fuzz::Harness& h, std::string_view input) {
  CHECK(h.run(input) == "");
  CHECK(h.check_serving() == "");
}

}  // namespace

TEST_CASE("the harness's own JSON grammar check accepts JSON and only JSON") {
  using tern::fuzz::JsonGrammar;
  for (const char* ok : {"{}", "[]", " 0 ", "-0.5e+10", "123456789012345678901234567890",
                         R"({"a":[1,true,false,null,"x\u00e9\n"],"b":{}})", "\"\\ud800\""}) {
    const std::string text = ok;
    CAPTURE(text);
    CHECK(JsonGrammar::valid(text));
  }
  for (const char* bad : {"", "{", "[1 2]", "{\"a\" 1}", "01", "1.", ".5", "-", "1e", "tru",
                          "nul", "[1,]", "{\"a\":1,}", "\"\\x\"", "\"\\u12\"", "{} {}",
                          "\"\x01\"", "\"\xff\""}) {
    const std::string text = bad;
    CAPTURE(text);
    CHECK_FALSE(JsonGrammar::valid(text));
  }
}

TEST_CASE("every seed of the fuzz corpus keeps the fuzz target's invariants") {
  const std::vector<fs::path> seeds = files_in(fuzz_dir() / "corpus");
  REQUIRE(seeds.size() >= 40);
  tern::fuzz::Harness h;
  for (const fs::path& p : seeds) {
    CAPTURE(p.filename().string());
    replay(h, tern::fuzz::slurp<std::string>(p));
  }
  const tern::GatewayStats s = h.gateway().stats();
  CHECK(s.messages_in > seeds.size() / 4);   // valid seeds were delivered
  CHECK(s.rejects_sent > seeds.size() / 4);  // bad seeds from a known sender were answered
}

TEST_CASE("every crash input the fuzzer found is handled and survived") {
  const std::vector<fs::path> crashes = files_in(fuzz_dir() / "regressions");
  tern::fuzz::Harness h;
  for (const fs::path& p : crashes) {
    CAPTURE(p.filename().string());
    replay(h, tern::fuzz::slurp<std::string>(p));
  }
}

// Found by the fuzzer's strict-JSON check (TERN_FUZZ_STRICT_JSON=1; regressions/strict-json-*):
// simdjson On-Demand does not validate what it skips, so malformed JSON inside a payload
// field the type does not declare used to reach the actor. The codec now validates skipped
// values (validate_skipped in lib/gateway/codec.cpp).
TEST_CASE("malformed JSON inside an undeclared payload field is not delivered") {
  tern::fuzz::Harness h;
  h.strict_json = true;
  const std::string head =
      R"({"sender_actor":"tester","sender_endpoint":"ipc://@SINK","receiver":"pong","message_type":"Level","message":{"level":1,"x":)";
  for (const char* bad : {"tru", "nul", "[1 2]", R"({"a" 1})", "01", "-", "1.e5"}) {
    const std::string value = bad;
    CAPTURE(value);
    CHECK(h.run(head + value + "}}") == "");
  }
  for (const fs::path& p : files_in(fuzz_dir() / "regressions")) {
    if (p.filename().string().rfind("strict-json-", 0) != 0) continue;
    CAPTURE(p.filename().string());
    CHECK(h.run(tern::fuzz::slurp<std::string>(p)) == "");
  }
  CHECK(h.check_serving() == "");
}
