// CURVE authentication and encryption for the gateway (docs/gateway.md, "Security").
//
// Each process has one key pair, read from a ZeroMQ certificate file (`NAME.key_secret`, the
// format czmq's zcert and pyzmq's zmq.auth.create_certificates write; `scripts/keygen NAME`
// makes a pair). The gateway uses it as the CURVE server key of its PULL socket and as the
// client key of its PUSH sockets; clients are let in only when their public key is on the
// allow-list (ZAP). The Python package reads the same files (python/tern/security.py).
//
// Off by default: a default-constructed CurveConfig means plain TCP, no authentication and
// no encryption, for trusted networks only.
#pragma once
#include <string>
#include <vector>

namespace tern {

/// CURVE settings of a gateway (GatewayConfig::curve). Read at construction.
struct CurveConfig {
  /// Our key pair: a certificate file holding `public-key` and `secret-key` (NAME.key_secret,
  /// mode 0600 or stricter). Empty (the default): CURVE off, plain TCP, anyone who can reach
  /// the endpoint may send: for trusted networks only.
  std::string key_file;
  /// Allowed clients: every `*.key` file (public certificate) in this directory, read once at
  /// construction. Empty: none from a directory.
  std::string allow_dir;
  /// Allowed clients given directly: Z85 public keys (40 characters).
  std::vector<std::string> allow_keys;

  /// True when CURVE is on (key_file set).
  bool enabled() const noexcept { return !key_file.empty(); }
};

/// A CURVE key pair, each key in Z85 text (40 characters).
struct CurveKeyPair {
  std::string public_key;
  std::string secret_key;
};

/// True when the linked libzmq supports CURVE (zmq_has("curve")). Any thread.
bool curve_available() noexcept;

/// Reads our key pair from a certificate file with `public-key` and `secret-key` in its `curve`
/// section. Throws std::runtime_error naming the file and what is wrong: cannot be read, group
/// or others may read it, no secret-key, a key that is not 40 characters of Z85, a public key
/// that does not belong to the secret key. Set-up; allocates.
CurveKeyPair load_curve_key_pair(const std::string& path);

/// Reads the `public-key` of a certificate file (NAME.key, or the public half of a
/// NAME.key_secret). Throws std::runtime_error naming the file and the problem. Set-up.
std::string load_curve_public_key(const std::string& path);

/// The public keys of every `*.key` file in `dir`, in file-name order. Throws
/// std::runtime_error naming the directory or the bad file. Set-up.
std::vector<std::string> load_curve_allow_dir(const std::string& dir);

/// Makes a new key pair and writes `dir/NAME.key` (public, mode 0644) and
/// `dir/NAME.key_secret` (both keys, mode 0600) in the certificate format above. Refuses to
/// overwrite either file. Returns the pair. Throws std::runtime_error naming the file.
CurveKeyPair create_curve_key_pair(const std::string& dir, const std::string& name);

/// True when `key` is a CURVE key in Z85 text: 40 characters that decode to 32 bytes.
bool valid_curve_key(const std::string& key) noexcept;

}  // namespace tern
