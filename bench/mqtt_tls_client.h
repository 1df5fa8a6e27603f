#pragma once

// A minimal MQTT 3.1.1 client over TLS with a client certificate, for the plugin's load
// generators (mqtt_connect_bench, plugin_revocation_bench). Raw OpenSSL and hand-written
// packets rather than libmosquitto: every step is a blocking call on one socket, so the
// generators time exactly TCP connect + TLS handshake + CONNECT -> CONNACK, with nothing of
// a client library's own loop, threads or reconnection logic in between, and no package
// beyond libssl-dev is needed.
//
// Only what the benchmarks send and read: CONNECT (clean session, no username: the broker
// takes it from the certificate), CONNACK, SUBSCRIBE (one filter), SUBACK, DISCONNECT.
// Every socket has 10 s send and receive timeouts, so nothing waits forever.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

namespace fleetca::bench {

// DeviceCredential: a device's certificate and key, loaded once (from <comm_id>.pem, key
// and certificate in one file, as plugin_fleet writes them).
struct DeviceCredential {
  std::string comm_id;
  std::string serial;     // hex, as fleetca reports it
  std::string issuer_id;
  std::shared_ptr<X509> cert;
  std::shared_ptr<EVP_PKEY> key;
};

inline std::string OpenSslErrors() {
  std::string out;
  unsigned long e;
  while ((e = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out;
}

// LoadFleet reads DIR/manifest (lines "<comm_id> <serial> <issuer_id>") and each device's
// DIR/devices/<comm_id>.pem. Empty on error (*error says why).
inline std::vector<DeviceCredential> LoadFleet(const std::string& dir, std::string* error) {
  std::vector<DeviceCredential> out;
  std::ifstream manifest(dir + "/manifest");
  if (!manifest) {
    *error = "cannot read " + dir + "/manifest";
    return {};
  }
  std::string line;
  while (std::getline(manifest, line)) {
    std::istringstream fields(line);
    DeviceCredential d;
    if (!(fields >> d.comm_id >> d.serial >> d.issuer_id)) continue;
    const std::string path = dir + "/devices/" + d.comm_id + ".pem";
    FILE* f = std::fopen(path.c_str(), "r");
    if (f == nullptr) {
      *error = "cannot open " + path;
      return {};
    }
    EVP_PKEY* key = PEM_read_PrivateKey(f, nullptr, nullptr, nullptr);
    std::rewind(f);
    X509* cert = PEM_read_X509(f, nullptr, nullptr, nullptr);
    std::fclose(f);
    if (key == nullptr || cert == nullptr) {
      *error = "cannot read the key and certificate in " + path + ": " + OpenSslErrors();
      return {};
    }
    d.key.reset(key, EVP_PKEY_free);
    d.cert.reset(cert, X509_free);
    out.push_back(std::move(d));
  }
  if (out.empty()) *error = dir + "/manifest lists no device";
  return out;
}

// NewClientContext: TLS client context verifying the broker against cafile (and its name
// against `host`, done per connection), no session resumption (every connection a full
// handshake, as a fleet reconnecting after a broker restart would do).
inline SSL_CTX* NewClientContext(const std::string& cafile, std::string* error) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == nullptr || SSL_CTX_load_verify_locations(ctx, cafile.c_str(), nullptr) != 1) {
    *error = "TLS context / cafile " + cafile + ": " + OpenSslErrors();
    if (ctx != nullptr) SSL_CTX_free(ctx);
    return nullptr;
  }
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  return ctx;
}

// MqttConnection: one TLS connection to a broker.
class MqttConnection {
 public:
  MqttConnection() = default;
  MqttConnection(const MqttConnection&) = delete;
  MqttConnection& operator=(const MqttConnection&) = delete;
  ~MqttConnection() { Close(); }

  int fd() const { return fd_; }
  SSL* ssl() const { return ssl_; }

  // Open: TCP connect to 127.0.0.1:port, TLS handshake presenting the device's certificate
  // (broker name checked against `host`). False with *error on failure.
  bool Open(SSL_CTX* ctx, int port, const std::string& host, const DeviceCredential& device,
            std::string* error) {
    Close();
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return Fail(error, "socket");
    const int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    timeval tv{10, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      return Fail(error, "connect");
    }
    ssl_ = SSL_new(ctx);
    if (ssl_ == nullptr || SSL_use_certificate(ssl_, device.cert.get()) != 1 ||
        SSL_use_PrivateKey(ssl_, device.key.get()) != 1 || SSL_set_fd(ssl_, fd_) != 1 ||
        SSL_ctrl(ssl_, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
                 const_cast<char*>(host.c_str())) != 1 || SSL_set1_host(ssl_, host.c_str()) != 1) {
      return Fail(error, "SSL setup: " + OpenSslErrors());
    }
    if (SSL_connect(ssl_) != 1) {
      return Fail(error, "TLS handshake: " + OpenSslErrors() + " (verify: " +
                             X509_verify_cert_error_string(SSL_get_verify_result(ssl_)) + ")");
    }
    return true;
  }

  // Connect: CONNECT (MQTT 3.1.1, clean session, keepalive seconds) and CONNACK. Returns the
  // CONNACK return code (0 accepted), or -1 with *error when no CONNACK came (a broker
  // refusing a client may also just close the connection).
  int Connect(const std::string& client_id, int keepalive, std::string* error) {
    std::string body;
    body += std::string("\x00\x04MQTT\x04", 7);
    body.push_back('\x02');  // clean session
    body.push_back(static_cast<char>(keepalive >> 8));
    body.push_back(static_cast<char>(keepalive & 0xff));
    AppendString(&body, client_id);
    if (!Send(Packet(0x10, body), error)) return -1;
    std::string packet;
    uint8_t type = 0;
    if (!ReadPacket(&type, &packet, error)) return -1;
    if (type != 0x20 || packet.size() != 2) {
      *error = "expected CONNACK";
      return -1;
    }
    return static_cast<uint8_t>(packet[1]);
  }

  // Subscribe: one filter at QoS 1; returns the SUBACK return code (0x80: refused), -1 on
  // error.
  int Subscribe(const std::string& filter, std::string* error) {
    std::string body;
    body.push_back(0);
    body.push_back(1);  // packet id 1
    AppendString(&body, filter);
    body.push_back(1);
    if (!Send(Packet(0x82, body), error)) return -1;
    std::string packet;
    uint8_t type = 0;
    if (!ReadPacket(&type, &packet, error)) return -1;
    if (type != 0x90 || packet.size() != 3) {
      *error = "expected SUBACK";
      return -1;
    }
    return static_cast<uint8_t>(packet[2]);
  }

  // Disconnect: DISCONNECT, then wait for the broker to close the connection (so that its
  // work for this client is over before the caller opens the next one), then close.
  void Disconnect() {
    std::string error;
    if (Send(std::string("\xe0\x00", 2), &error)) {
      char buf[256];
      while (SSL_read(ssl_, buf, sizeof(buf)) > 0) {
      }
    }
    Close();
  }

  // ReadClosed: after poll() reported the socket readable: true when the broker closed the
  // connection (EOF, close_notify or an error), false when it was data (or a TLS record
  // without application data) and the connection is still open.
  bool ReadClosed() {
    char buf[4096];
    const int n = SSL_read(ssl_, buf, sizeof(buf));
    if (n > 0) return false;
    const int e = SSL_get_error(ssl_, n);
    ERR_clear_error();
    return !(e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE);
  }

  void Close() {
    if (ssl_ != nullptr) {
      SSL_free(ssl_);
      ssl_ = nullptr;
    }
    if (fd_ >= 0) {
      ::close(fd_);
      fd_ = -1;
    }
    ERR_clear_error();
  }

 private:
  static void AppendString(std::string* out, const std::string& s) {
    out->push_back(static_cast<char>(s.size() >> 8));
    out->push_back(static_cast<char>(s.size() & 0xff));
    *out += s;
  }

  static std::string Packet(uint8_t type, const std::string& body) {
    std::string out(1, static_cast<char>(type));
    size_t n = body.size();
    do {
      uint8_t b = n % 128;
      n /= 128;
      if (n > 0) b |= 0x80;
      out.push_back(static_cast<char>(b));
    } while (n > 0);
    return out + body;
  }

  bool Send(const std::string& data, std::string* error) {
    if (SSL_write(ssl_, data.data(), static_cast<int>(data.size())) != static_cast<int>(data.size())) {
      *error = "TLS write: " + OpenSslErrors();
      return false;
    }
    return true;
  }

  bool ReadExactly(char* out, size_t n, std::string* error) {
    while (n > 0) {
      const int r = SSL_read(ssl_, out, static_cast<int>(n));
      if (r <= 0) {
        const int e = SSL_get_error(ssl_, r);
        *error = e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
                     ? "connection closed by the broker"
                     : "TLS read: " + OpenSslErrors();
        return false;
      }
      out += r;
      n -= static_cast<size_t>(r);
    }
    return true;
  }

  bool ReadPacket(uint8_t* type, std::string* body, std::string* error) {
    char header = 0;
    if (!ReadExactly(&header, 1, error)) return false;
    *type = static_cast<uint8_t>(header) & 0xf0;
    size_t length = 0;
    for (int shift = 0; shift < 28; shift += 7) {
      char b = 0;
      if (!ReadExactly(&b, 1, error)) return false;
      length |= static_cast<size_t>(static_cast<uint8_t>(b) & 0x7f) << shift;
      if ((static_cast<uint8_t>(b) & 0x80) == 0) break;
    }
    body->assign(length, '\0');
    return length == 0 || ReadExactly(body->data(), length, error);
  }

  bool Fail(std::string* error, const std::string& what) {
    *error = what;
    if (errno != 0 && what.find(':') == std::string::npos) *error += std::string(": ") + std::strerror(errno);
    Close();
    return false;
  }

  int fd_ = -1;
  SSL* ssl_ = nullptr;
};

}  // namespace fleetca::bench
