// rank_env.cpp — launch environment detection and the TCP rendezvous (see rank_env.h).
#include "host/rank_env.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <set>
#include <thread>

#include "host/error.h"

namespace llm {

namespace {

const char* env(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? v : nullptr;
}

// A whole decimal integer in [lo, hi], or an llm::Error naming the variable.
int env_int(const char* name, const char* text, long lo, long hi) {
  errno = 0;
  char* end = nullptr;
  const long v = std::strtol(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || v < lo || v > hi)
    fail("environment variable ", name, "='", text, "' is not an integer in [", lo, ", ", hi, "]");
  return static_cast<int>(v);
}

int required_int(const char* name, const char* launcher, long lo, long hi) {
  const char* v = env(name);
  if (!v) fail("environment variable ", name, " is not set (", launcher, ")");
  return env_int(name, v, lo, hi);
}

}  // namespace

RankEnv detect_rank_env() {
  constexpr long kMaxWorld = 1 << 20;
  RankEnv e;
  if (env("OMPI_COMM_WORLD_SIZE") || env("OMPI_COMM_WORLD_RANK")) {
    const char* why = "Open MPI launch: mpirun sets OMPI_COMM_WORLD_RANK, _SIZE and _LOCAL_RANK";
    e.launcher = RankEnv::Launcher::kMpi;
    e.world = required_int("OMPI_COMM_WORLD_SIZE", why, 1, kMaxWorld);
    e.rank = required_int("OMPI_COMM_WORLD_RANK", why, 0, e.world - 1);
    e.local_rank = env("OMPI_COMM_WORLD_LOCAL_RANK") ? required_int("OMPI_COMM_WORLD_LOCAL_RANK", why, 0, e.world - 1)
                                                     : e.rank;
    return e;
  }
  if (!(env("RANK") || env("WORLD_SIZE") || env("LOCAL_RANK") || env("MASTER_ADDR") || env("MASTER_PORT")))
    return e;  // a single process
  const char* why = "torchrun-style launch: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT go together";
  e.launcher = RankEnv::Launcher::kTorchrun;
  e.world = required_int("WORLD_SIZE", why, 1, kMaxWorld);
  e.rank = required_int("RANK", why, 0, e.world - 1);
  if (e.world == 1) return e;  // nothing to meet: LOCAL_RANK / MASTER_* are optional
  e.local_rank = required_int("LOCAL_RANK", why, 0, e.world - 1);
  const char* addr = env("MASTER_ADDR");
  if (!addr) fail("environment variable MASTER_ADDR is not set (", why, ")");
  e.master_addr = addr;
  e.master_port = required_int("MASTER_PORT", why, 1, 65535);
  return e;
}

// ---- TCP rendezvous ----

namespace {

using Clock = std::chrono::steady_clock;

constexpr uint32_t kHelloMagic = 0x4c4c4d52;        // "LLMR"
constexpr uint64_t kMaxBlobBytes = uint64_t(1) << 26;  // 64 MiB: far above any id we exchange

struct Hello {
  uint32_t magic;
  int32_t rank, world;
};

class Socket {
 public:
  explicit Socket(int fd) : fd_(fd) {}
  ~Socket() {
    if (fd_ >= 0) close(fd_);
  }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  int fd() const { return fd_; }

 private:
  int fd_;
};

struct Rendezvous {
  std::string where;  // "ADDR:PORT"
  double timeout_s;
  Clock::time_point deadline;

  [[noreturn]] void timed_out(const std::string& detail = "") const {
    fail("rendezvous at ", where, " not reached within ", timeout_s, " s", detail);
  }
  int ms_left() const {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    return left > 0 ? static_cast<int>(std::min<long long>(left, 1 << 30)) : 0;
  }
  // Waits until fd is ready for `events`; past the deadline => timed_out().
  void wait(int fd, short events, const char* detail) const {
    for (;;) {
      const int ms = ms_left();
      if (ms == 0) timed_out(detail);
      pollfd p{fd, events, 0};
      const int r = poll(&p, 1, ms);
      if (r > 0) return;
      if (r < 0 && errno != EINTR) fail("rendezvous at ", where, ": poll failed (", std::strerror(errno), ")");
    }
  }
  void send_all(int fd, const void* data, size_t n) const {
    const char* p = static_cast<const char*>(data);
    while (n > 0) {
      wait(fd, POLLOUT, " (sending)");
      const ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
      if (k < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (k <= 0) fail("rendezvous at ", where, ": send failed (", std::strerror(errno), ")");
      p += k;
      n -= static_cast<size_t>(k);
    }
  }
  // false when the peer closed the connection before n bytes arrived.
  bool recv_all(int fd, void* data, size_t n) const {
    char* p = static_cast<char*>(data);
    while (n > 0) {
      wait(fd, POLLIN, " (receiving)");
      const ssize_t k = recv(fd, p, n, 0);
      if (k < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (k < 0) fail("rendezvous at ", where, ": receive failed (", std::strerror(errno), ")");
      if (k == 0) return false;
      p += k;
      n -= static_cast<size_t>(k);
    }
    return true;
  }
};

void set_nonblocking(int fd) {
  const int flags = fcntl(fd, F_GETFL, 0);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) fail("rendezvous: fcntl failed (", std::strerror(errno), ")");
}

// Rank 0: accept world-1 peers, check who they are, send each the blob.
void serve(const RankEnv& env, const std::string& blob, const Rendezvous& rv) {
  Socket listener(socket(AF_INET, SOCK_STREAM, 0));
  if (listener.fd() < 0) fail("rendezvous: socket failed (", std::strerror(errno), ")");
  const int one = 1;
  setsockopt(listener.fd(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  addr.sin_port = htons(static_cast<uint16_t>(env.master_port));
  if (bind(listener.fd(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || listen(listener.fd(), 128) != 0)
    fail("rendezvous: rank 0 cannot listen on MASTER_PORT=", env.master_port, " (", std::strerror(errno), ")");
  set_nonblocking(listener.fd());
  std::set<int> seen;
  const uint64_t len = blob.size();
  while (static_cast<int>(seen.size()) < env.world - 1) {
    const std::string missing = ": " + std::to_string(seen.size()) + " of the " + std::to_string(env.world - 1) +
                                " other ranks connected";
    rv.wait(listener.fd(), POLLIN, missing.c_str());
    Socket peer(accept(listener.fd(), nullptr, nullptr));
    if (peer.fd() < 0) continue;  // EAGAIN / ECONNABORTED: poll again
    set_nonblocking(peer.fd());
    Hello h{};
    if (!rv.recv_all(peer.fd(), &h, sizeof(h)) || h.magic != kHelloMagic) continue;  // not one of ours
    if (h.world != env.world)
      fail("rendezvous at ", rv.where, ": rank ", h.rank, " says WORLD_SIZE=", h.world, ", rank 0 has ", env.world);
    if (h.rank < 1 || h.rank >= env.world || !seen.insert(h.rank).second)
      fail("rendezvous at ", rv.where, ": two processes claim RANK=", h.rank, " (or it is out of range)");
    rv.send_all(peer.fd(), &len, sizeof(len));
    rv.send_all(peer.fd(), blob.data(), blob.size());
  }
}

// Other ranks: connect (retrying while rank 0 is not up yet), introduce ourselves, read the blob.
std::string fetch(const RankEnv& env, const Rendezvous& rv) {
  addrinfo hints{}, *res = nullptr;
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  const std::string port = std::to_string(env.master_port);
  const int gai = getaddrinfo(env.master_addr.c_str(), port.c_str(), &hints, &res);
  if (gai != 0) fail("MASTER_ADDR='", env.master_addr, "': cannot resolve (", gai_strerror(gai), ")");
  std::unique_ptr<addrinfo, void (*)(addrinfo*)> guard(res, freeaddrinfo);
  for (;;) {
    for (addrinfo* a = res; a; a = a->ai_next) {
      Socket s(socket(a->ai_family, a->ai_socktype, a->ai_protocol));
      if (s.fd() < 0) continue;
      set_nonblocking(s.fd());
      if (connect(s.fd(), a->ai_addr, a->ai_addrlen) != 0) {
        if (errno != EINPROGRESS) continue;
        pollfd p{s.fd(), POLLOUT, 0};
        if (poll(&p, 1, std::min(rv.ms_left(), 1000)) <= 0) continue;
        int err = 0;
        socklen_t elen = sizeof(err);
        if (getsockopt(s.fd(), SOL_SOCKET, SO_ERROR, &err, &elen) != 0 || err != 0) continue;
      }
      const Hello h{kHelloMagic, env.rank, env.world};
      rv.send_all(s.fd(), &h, sizeof(h));
      uint64_t len = 0;
      if (!rv.recv_all(s.fd(), &len, sizeof(len)))
        fail("rendezvous at ", rv.where, ": rank 0 closed the connection (does it have the same WORLD_SIZE=",
             env.world, "?)");
      if (len > kMaxBlobBytes) fail("rendezvous at ", rv.where, ": rank 0 announced ", len, " bytes (corrupt?)");
      std::string blob(len, '\0');
      if (!rv.recv_all(s.fd(), blob.data(), len)) fail("rendezvous at ", rv.where, ": connection closed mid-message");
      return blob;
    }
    if (rv.ms_left() == 0) rv.timed_out(" (no answer from rank 0: is it running, are MASTER_ADDR/MASTER_PORT right?)");
    std::this_thread::sleep_for(std::chrono::milliseconds(std::min(rv.ms_left(), 100)));
  }
}

}  // namespace

std::string tcp_broadcast_from_rank0(const RankEnv& env, const std::string& blob, double timeout_s) {
  if (env.world <= 1) return blob;
  if (!(timeout_s > 0)) fail("rendezvous timeout must be positive (got ", timeout_s, ")");
  if (env.master_port <= 0 || env.master_port > 65535 || env.master_addr.empty())
    fail("rendezvous needs MASTER_ADDR and MASTER_PORT (got '", env.master_addr, "' and ", env.master_port, ")");
  Rendezvous rv;
  rv.where = env.master_addr + ":" + std::to_string(env.master_port);
  rv.timeout_s = timeout_s;
  rv.deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout_s));
  if (env.rank == 0) {
    serve(env, blob, rv);
    return blob;
  }
  return fetch(env, rv);
}

}  // namespace llm
