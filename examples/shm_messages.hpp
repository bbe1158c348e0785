// The messages of examples/shm_feed.cpp and examples/shm_strategy.cpp: two processes on one
// host that talk through shared memory (tern/shm.hpp). A type that crosses is trivially
// copyable and both programs compile the same definition: at connect, each side compares
// every type's fingerprint (id, name, size, alignment) and refuses a mismatch.
#pragma once
#include <cstdint>

#include <tern/message.hpp>

namespace shm_example {

struct Quote {
  static constexpr tern::MessageId message_id = 420;
  std::uint64_t seq = 0;
  std::int64_t sent_ns = 0;  ///< the feed's steady clock when it sent the quote
  double bid = 0, ask = 0;
  char symbol[8] = {};
};

struct Order {
  static constexpr tern::MessageId message_id = 421;
  std::uint64_t quote_seq = 0;     ///< the quote that triggered it
  std::int64_t quote_sent_ns = 0;  ///< copied from the quote: the feed measures the round trip
  double px = 0;
  std::int32_t qty = 0;
  std::int32_t side = 0;  ///< +1 buy, -1 sell
  char symbol[8] = {};
};

inline constexpr const char* kSymbols[4] = {"AAPL", "MSFT", "ES", "EURUSD"};

}  // namespace shm_example
