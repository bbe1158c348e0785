// The wire types the gateway examples share with the Python examples (python/examples/):
// the same type names and field names, so either side can talk to the other.
#pragma once
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include <tern/wire.hpp>

namespace example {

struct Ping {
  static constexpr tern::MessageId message_id = 1001;
  std::int64_t count = 0;
  TERN_WIRE(Ping, count)
};
struct Pong {
  static constexpr tern::MessageId message_id = 1002;
  std::int64_t count = 0;
  TERN_WIRE(Pong, count)
};
struct Quote {
  static constexpr tern::MessageId message_id = 1003;
  char symbol[16] = {};  // a Python str of at most 16 bytes
  double bid = 0;
  double ask = 0;
  std::int64_t seq = 0;
  TERN_WIRE(Quote, symbol, bid, ask, seq)
};
struct Signal {
  static constexpr tern::MessageId message_id = 1004;
  char symbol[16] = {};
  std::int32_t side = 0;  // +1 buy, -1 sell, 0 flat
  double strength = 0;
  std::int64_t seq = 0;
  TERN_WIRE(Signal, symbol, side, strength, seq)
};
// market_data_gateway --serve (python/examples/research_notebook.py): a subscriber asks for
// a stream of Quotes, and for the latest prices of one symbol.
struct Subscribe {
  static constexpr tern::MessageId message_id = 1005;
  std::int64_t quotes = 0;  // how many Quotes to stream to the sender
  std::int64_t window = 0;  // at most this many unanswered (by a Signal) at a time
  TERN_WIRE(Subscribe, quotes, window)
};
struct SnapshotRequest {
  static constexpr tern::MessageId message_id = 1006;
  char symbol[16] = {};
  TERN_WIRE(SnapshotRequest, symbol)
};
struct Snapshot {
  static constexpr tern::MessageId message_id = 1007;
  char symbol[16] = {};
  double bid = 0;           // the latest quote's prices (0 when seq is -1)
  double ask = 0;
  std::int64_t seq = -1;    // the latest Quote's seq for this symbol; -1: none (or unknown symbol)
  std::int64_t sent = 0;    // Quotes sent in the current subscription, all symbols
  TERN_WIRE(Snapshot, symbol, bid, ask, seq, sent)
};

/// --key value command lines: `Args a(argc, argv, usage); a.str("--peer", "tcp://...")`.
/// Unknown options and missing values print the usage and exit 2.
class Args {
 public:
  Args(int argc, char** argv, const char* usage) : argc_(argc), argv_(argv), usage_(usage) {
    for (int i = 1; i < argc; ++i) {
      const std::string_view a = argv[i];
      if (a == "-h" || a == "--help") {
        std::printf("%s", usage);
        std::exit(0);
      }
    }
  }
  std::string str(std::string_view key, std::string fallback) {
    known_.append(key).push_back(' ');
    for (int i = 1; i < argc_; ++i) {
      if (argv_[i] != key) continue;
      if (i + 1 >= argc_) fail(std::string(key) + " needs a value");
      return argv_[i + 1];
    }
    return fallback;
  }
  std::uint64_t num(std::string_view key, std::uint64_t fallback) {
    const std::string s = str(key, std::to_string(fallback));
    char* end = nullptr;
    const unsigned long long v = std::strtoull(s.c_str(), &end, 10);
    if (s.empty() || *end) fail(std::string(key) + " wants a whole number, got '" + s + "'");
    return v;
  }
  bool flag(std::string_view key) {
    known_.append(key).push_back(' ');
    for (int i = 1; i < argc_; ++i)
      if (argv_[i] == key) return true;
    return false;
  }
  /// Call after every str/num/flag: refuses options no one asked for.
  void done() {
    for (int i = 1; i < argc_; ++i) {
      const std::string a = argv_[i];
      if (a.rfind("--", 0) != 0) continue;
      if (known_.find(a + " ") == std::string::npos) fail("unknown option '" + a + "'");
    }
  }
  [[noreturn]] void fail(const std::string& msg) const {
    std::fprintf(stderr, "error: %s\n%s", msg.c_str(), usage_);
    std::exit(2);
  }

 private:
  int argc_;
  char** argv_;
  const char* usage_;
  std::string known_;
};

}  // namespace example
