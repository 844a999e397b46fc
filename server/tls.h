// TLS settings of the server (--tls-cert, --tls-key, --tls-client-ca), read and checked once at
// start so that a missing, unreadable or mismatched file is a start error that names the flag,
// not a failure at the first handshake. gRPC and the HTTP server are given the same PEM texts.
#pragma once

#include <optional>
#include <string>

#include "absl/status/statusor.h"

namespace sculpt {

struct TlsFiles {
  std::string cert_chain_pem;  // the server's certificate, then any intermediates
  std::string private_key_pem;
  std::string client_ca_pem;  // mTLS: clients must present a certificate it signed; "" = none
};

// Nothing when no TLS flag is given; INVALID_ARGUMENT naming the flag when a file is missing,
// unreadable, not PEM of the right kind, or when the key does not belong to the certificate.
absl::StatusOr<std::optional<TlsFiles>> LoadTlsFiles(const std::string& cert_path,
                                                     const std::string& key_path,
                                                     const std::string& client_ca_path);

}  // namespace sculpt
