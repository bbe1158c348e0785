// CURVE key files (ZeroMQ's certificate text format) and the ZAP handler thread.
#include "security.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <stdexcept>
#include <utility>
#include <vector>

namespace tern {

namespace {

constexpr std::size_t kKeyText = 40;            // Z85 of 32 bytes
constexpr std::size_t kMaxCertBytes = 64 * 1024;  // a certificate is a few hundred bytes
constexpr std::string_view kZ85 =
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw std::runtime_error("tern: curve: key file '" + path + "': " + what);
}

std::string trim(std::string_view s) {
  const auto b = s.find_first_not_of(" \t\r");
  if (b == std::string_view::npos) return {};
  const auto e = s.find_last_not_of(" \t\r");
  return std::string(s.substr(b, e - b + 1));
}

/// Why `key` is not a Z85 CURVE key, or empty when it is one.
std::string key_problem(const std::string& key) {
  if (key.size() != kKeyText)
    return "40 characters of Z85 expected, got " + std::to_string(key.size()) + " characters";
  for (char c : key)
    if (kZ85.find(c) == std::string_view::npos)
      return std::string("character '") + c + "' is not in the Z85 alphabet";
  unsigned char bin[32];
  if (!zmq_z85_decode(bin, key.c_str())) return "does not decode as Z85";
  return {};
}

struct Cert {
  std::string public_key, secret_key;
  int public_line = 0, secret_line = 0;
};

/// Parses a certificate: `#` comments, unindented section names (`metadata`, `curve`),
/// indented `name = value` entries (value optionally in double or single quotes). Only the
/// `curve` section's public-key and secret-key are read.
Cert read_cert(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(path, std::string("cannot open: ") + std::strerror(errno));
  std::string text;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      const int e = errno;
      ::close(fd);
      fail(path, std::string("cannot read: ") + std::strerror(e));
    }
    if (n == 0) break;
    text.append(buf, static_cast<std::size_t>(n));
    if (text.size() > kMaxCertBytes) {
      ::close(fd);
      fail(path, "larger than 64 KiB: not a certificate");
    }
  }
  ::close(fd);
  Cert c;
  std::string section;
  int line_no = 0;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    std::size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    const std::string_view line(text.data() + pos, nl - pos);
    pos = nl + 1;
    ++line_no;
    const std::string t = trim(line);
    if (t.empty() || t[0] == '#') continue;
    if (line[0] != ' ' && line[0] != '\t') {  // a top-level section name
      section = t;
      continue;
    }
    if (section != "curve") continue;
    const auto eq = t.find('=');
    if (eq == std::string::npos) continue;
    const std::string name = trim(std::string_view(t).substr(0, eq));
    std::string value = trim(std::string_view(t).substr(eq + 1));
    if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') &&
        value.back() == value.front())
      value = value.substr(1, value.size() - 2);
    const auto take = [&](std::string& into, int& at) {
      if (!into.empty())
        fail(path, "line " + std::to_string(line_no) + ": " + name + " given twice (also line " +
                       std::to_string(at) + ")");
      if (const std::string p = key_problem(value); !p.empty())
        fail(path, "line " + std::to_string(line_no) + ": " + name + " is not a CURVE key: " + p);
      into = value;
      at = line_no;
    };
    if (name == "public-key") take(c.public_key, c.public_line);
    if (name == "secret-key") take(c.secret_key, c.secret_line);
  }
  return c;
}

void write_file(const std::string& path, const std::string& text, mode_t mode) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) fail(path, std::string("cannot create: ") + std::strerror(errno));
  // why fchmod: open's mode is masked by the umask; the secret file must be exactly 0600
  // and the public one readable by others whatever the umask is.
  bool ok = ::fchmod(fd, mode) == 0;
  std::size_t done = 0;
  while (ok && done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    ok = n > 0;
    if (ok) done += static_cast<std::size_t>(n);
  }
  const int e = errno;
  ok = (::close(fd) == 0) && ok;
  if (!ok) fail(path, std::string("cannot write: ") + std::strerror(e));
}

}  // namespace

bool curve_available() noexcept { return zmq_has("curve") != 0; }

bool valid_curve_key(const std::string& key) noexcept {
  try {
    return key_problem(key).empty();
  } catch (...) {
    return false;
  }
}

CurveKeyPair load_curve_key_pair(const std::string& path) {
  const Cert c = read_cert(path);
  if (c.secret_key.empty())
    fail(path, "no secret-key in its curve section (a public certificate? the pair is in "
               "NAME.key_secret)");
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) fail(path, std::string("cannot open: ") + std::strerror(errno));
  if (st.st_mode & 077) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    fail(path, std::string("holds a secret key but its mode is ") + mode +
                   " (group or others may read it); chmod 600 it");
  }
  if (c.public_key.empty()) fail(path, "no public-key in its curve section");
  char derived[kKeyText + 1];
  if (zmq_curve_public(derived, c.secret_key.c_str()) != 0)
    fail(path, std::string("cannot derive the public key: ") + zmq_strerror(zmq_errno()));
  if (c.public_key != derived)
    fail(path, "line " + std::to_string(c.public_line) +
                   ": public-key does not belong to the secret-key");
  return {c.public_key, c.secret_key};
}

std::string load_curve_public_key(const std::string& path) {
  Cert c = read_cert(path);
  if (c.public_key.empty()) fail(path, "no public-key in its curve section");
  return std::move(c.public_key);
}

std::vector<std::string> load_curve_allow_dir(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (!d)
    throw std::runtime_error("tern: curve: allow directory '" + dir +
                             "': cannot open: " + std::strerror(errno));
  std::vector<std::string> names;
  while (const dirent* e = ::readdir(d)) {
    const std::string_view n(e->d_name);
    if (n.size() > 4 && n.substr(n.size() - 4) == ".key" && n[0] != '.') names.emplace_back(n);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  std::vector<std::string> keys;
  keys.reserve(names.size());
  for (const std::string& n : names) keys.push_back(load_curve_public_key(dir + "/" + n));
  return keys;
}

CurveKeyPair create_curve_key_pair(const std::string& dir, const std::string& name) {
  if (name.empty() || name.find('/') != std::string::npos)
    throw std::runtime_error("tern: curve: key name '" + name + "' must be non-empty, without '/'");
  char pub[kKeyText + 1], sec[kKeyText + 1];
  if (zmq_curve_keypair(pub, sec) != 0)
    throw std::runtime_error(std::string("tern: curve: cannot make a key pair: ") +
                             zmq_strerror(zmq_errno()));
  char when[64];
  const std::time_t now = std::time(nullptr);
  std::tm tm {};
  ::localtime_r(&now, &tm);
  std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
  const std::string base = dir + "/" + name;
  write_file(base + ".key",
             std::string("#   ****  Generated on ") + when + " by tern  ****\n"
             "#   ZeroMQ CURVE Public Certificate\n"
             "#   Exchange securely, or use a secure mechanism to verify the contents\n"
             "#   of this file after exchange.\n\n"
             "metadata\ncurve\n    public-key = \"" + pub + "\"\n",
             0644);
  write_file(base + ".key_secret",
             std::string("#   ****  Generated on ") + when + " by tern  ****\n"
             "#   ZeroMQ CURVE **Secret** Certificate\n"
             "#   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.\n\n"
             "metadata\ncurve\n    public-key = \"" + pub + "\"\n    secret-key = \"" + sec +
                 "\"\n",
             0600);
  return {pub, sec};
}

namespace gw {

namespace {

constexpr const char* kZapEndpoint = "inproc://zeromq.zap.01";
constexpr const char* kZapDomain = "tern";
constexpr int kFailedEvents = CurveSecurity::kFailedEvents;

std::string zmq_fail(const char* what) {
  return std::string("tern: curve: ") + what + ": " + zmq_strerror(zmq_errno());
}

/// Receives the rest of a multipart message into `parts` (at most `max`, the rest dropped).
void recv_parts(void* sock, std::vector<std::string>& parts, std::size_t max) {
  parts.clear();
  zmq_msg_t m;
  for (;;) {
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, sock, ZMQ_DONTWAIT) < 0) {
      zmq_msg_close(&m);
      return;
    }
    if (parts.size() < max)
      parts.emplace_back(static_cast<const char*>(zmq_msg_data(&m)), zmq_msg_size(&m));
    const bool more = zmq_msg_more(&m) != 0;
    zmq_msg_close(&m);
    if (!more) return;
  }
}

}  // namespace

CurveSecurity::CurveSecurity(const CurveConfig& cfg) : enabled_(cfg.enabled()) {
  if (!enabled_) {
    if (!cfg.allow_dir.empty() || !cfg.allow_keys.empty())
      throw std::runtime_error(
          "tern: curve: an allow-list is set but key_file is empty (CURVE is off)");
    return;
  }
  if (!curve_available())
    throw std::runtime_error("tern: curve: this libzmq was built without CURVE (zmq_has(\"curve\"))");
  keys_ = load_curve_key_pair(cfg.key_file);
  std::vector<std::string> keys = cfg.allow_keys;
  for (const std::string& k : keys)
    if (const std::string p = key_problem(k); !p.empty())
      throw std::runtime_error("tern: curve: allow_keys entry '" + k + "' is not a CURVE key: " + p);
  if (!cfg.allow_dir.empty()) {
    std::vector<std::string> more = load_curve_allow_dir(cfg.allow_dir);
    keys.insert(keys.end(), more.begin(), more.end());
  }
  if (keys.empty())
    throw std::runtime_error("tern: curve: the allow-list is empty (allow_dir '" + cfg.allow_dir +
                             "' has no *.key file and allow_keys is empty): no client could "
                             "connect");
  for (const std::string& k : keys) {
    std::string bin(32, '\0');
    zmq_z85_decode(reinterpret_cast<std::uint8_t*>(bin.data()), k.c_str());
    allowed_.insert(std::move(bin));
  }
}

CurveSecurity::~CurveSecurity() { stop(); }

void CurveSecurity::start_server(void* ctx, void* pull, bool watch) {
  if (!enabled_) return;
  const int one = 1;
  if (zmq_setsockopt(pull, ZMQ_CURVE_SERVER, &one, sizeof one) != 0 ||
      zmq_setsockopt(pull, ZMQ_CURVE_SECRETKEY, keys_.secret_key.c_str(), kKeyText) != 0 ||
      zmq_setsockopt(pull, ZMQ_ZAP_DOMAIN, kZapDomain, std::strlen(kZapDomain)) != 0)
    throw std::runtime_error(zmq_fail("cannot make the PULL socket a CURVE server"));
  stop_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (stop_fd_ < 0) throw std::runtime_error("tern: curve: eventfd failed");
  zap_ = zmq_socket(ctx, ZMQ_REP);
  if (!zap_) throw std::runtime_error(zmq_fail("cannot create the ZAP socket"));
  const int linger = 0;
  zmq_setsockopt(zap_, ZMQ_LINGER, &linger, sizeof linger);
  if (zmq_bind(zap_, kZapEndpoint) != 0)
    throw std::runtime_error(zmq_fail("cannot bind the ZAP handler inproc://zeromq.zap.01"));
  if (!watch) {
    thread_ = std::thread([this] { run(); });
    return;
  }
  // One inproc name per socket: the context is the gateway's own, but be unique anyway.
  char addr[64];
  std::snprintf(addr, sizeof addr, "inproc://tern-curve-monitor-%p", pull);
  if (zmq_socket_monitor(pull, addr, kFailedEvents) != 0)
    throw std::runtime_error(zmq_fail("cannot monitor the PULL socket"));
  monitoring_ = true;
  monitor_ = zmq_socket(ctx, ZMQ_PAIR);
  if (!monitor_ || zmq_setsockopt(monitor_, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
      zmq_connect(monitor_, addr) != 0)
    throw std::runtime_error(zmq_fail("cannot connect to the PULL socket's monitor"));
  // The sockets move to the new thread here; starting it is the barrier ZeroMQ asks for.
  thread_ = std::thread([this] { run(); });
}

bool CurveSecurity::configure_client(void* push, std::string_view server_key) const noexcept {
  if (!enabled_) return true;
  if (server_key.size() != kKeyText) return false;
  const std::string key(server_key);
  if (!key_problem(key).empty()) return false;
  return zmq_setsockopt(push, ZMQ_CURVE_SERVERKEY, key.c_str(), kKeyText) == 0 &&
         zmq_setsockopt(push, ZMQ_CURVE_PUBLICKEY, keys_.public_key.c_str(), kKeyText) == 0 &&
         zmq_setsockopt(push, ZMQ_CURVE_SECRETKEY, keys_.secret_key.c_str(), kKeyText) == 0;
}

void CurveSecurity::stop_monitor(void* pull) noexcept {
  if (!monitoring_ || !pull) return;
  zmq_socket_monitor(pull, nullptr, 0);
  monitoring_ = false;
}

void CurveSecurity::stop() noexcept {
  if (thread_.joinable()) {
    (void)eventfd_write(stop_fd_, 1);
    thread_.join();
  }
  // Not started (a set-up error after the sockets were made): close them here.
  for (void** s : {&zap_, &monitor_}) {
    if (*s) zmq_close(*s);
    *s = nullptr;
  }
  if (stop_fd_ >= 0) ::close(stop_fd_);
  stop_fd_ = -1;
}

void CurveSecurity::run() noexcept {
  zmq_pollitem_t items[3] = {{zap_, 0, ZMQ_POLLIN, 0},
                             {nullptr, stop_fd_, ZMQ_POLLIN, 0},
                             {monitor_, 0, ZMQ_POLLIN, 0}};
  const int n = monitor_ ? 3 : 2;  // watch=false: the caller's monitor counts failures
  for (;;) {
    const int rc = zmq_poll(items, n, -1);
    if (rc < 0) {
      if (zmq_errno() == EINTR) continue;
      break;  // ETERM: the context is going away
    }
    if (items[1].revents & ZMQ_POLLIN) break;
    if (items[0].revents & ZMQ_POLLIN) answer_zap();
    if (n == 3 && (items[2].revents & ZMQ_POLLIN)) read_monitor();
  }
  zmq_close(zap_);
  if (monitor_) zmq_close(monitor_);
  zap_ = monitor_ = nullptr;
}

void CurveSecurity::answer_zap() noexcept {
  // ZAP request (RFC 27): version, request id, domain, address, routing id, mechanism,
  // credentials (CURVE: the client's 32-byte public key). libzmq is the only sender.
  thread_local std::vector<std::string> req;
  try {
    recv_parts(zap_, req, 8);
  } catch (...) {
    req.clear();
  }
  if (req.size() < 2) return;  // nothing we can answer (cannot happen with libzmq)
  const bool ok = req.size() >= 7 && req[0] == "1.0" && req[5] == "CURVE" &&
                  req[6].size() == 32 && allowed_.count(req[6]) != 0;
  char user[kKeyText + 1] = {};
  if (ok) zmq_z85_encode(user, reinterpret_cast<const std::uint8_t*>(req[6].data()), 32);
  if (!ok) denied_.fetch_add(1, std::memory_order_relaxed);
  // Reply: version, request id, status code, status text, user id (the client's public key
  // in Z85: every frame from it carries it as "User-Id"), metadata.
  const std::string_view parts[6] = {"1.0", req[1], ok ? "200" : "400",
                                     ok ? "OK" : "client key not allowed",
                                     ok ? std::string_view(user, kKeyText) : std::string_view(),
                                     std::string_view()};
  for (int i = 0; i < 6; ++i)
    (void)zmq_send(zap_, parts[i].data(), parts[i].size(), i < 5 ? ZMQ_SNDMORE : 0);
}

void CurveSecurity::read_monitor() noexcept {
  // Each event: a 6-byte frame (uint16 event, uint32 value) and the endpoint.
  thread_local std::vector<std::string> ev;
  for (int i = 0; i < 64; ++i) {
    try {
      recv_parts(monitor_, ev, 1);
    } catch (...) {
      ev.clear();
    }
    if (ev.empty()) return;
    if (ev[0].size() < 2) continue;
    std::uint16_t id;
    std::memcpy(&id, ev[0].data(), sizeof id);
    if (id & kFailedEvents) failed_.fetch_add(1, std::memory_order_relaxed);
  }
}

}  // namespace gw
}  // namespace tern
