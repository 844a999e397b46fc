#include "server/tls.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status.h"

namespace sculpt {
namespace {

struct BioFree {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct X509Free {
  void operator()(X509* cert) const { X509_free(cert); }
};
struct KeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
using Bio = std::unique_ptr<BIO, BioFree>;
using Certificate = std::unique_ptr<X509, X509Free>;
using PrivateKey = std::unique_ptr<EVP_PKEY, KeyFree>;

Bio MemoryBio(const std::string& text) {
  return Bio(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

// OpenSSL's reason for the last failure, and the queue cleared for the next check.
std::string OpenSslReason() {
  const unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "no PEM block of the expected kind";
  char text[256];
  ERR_error_string_n(code, text, sizeof(text));
  return text;
}

absl::StatusOr<std::string> ReadFlagFile(const std::string& flag, const std::string& path) {
  absl::StatusOr<std::string> text = ReadFileToString(path);
  if (!text.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, " ", path, ": ", text.status().message()));
  }
  return text;
}

// Every certificate of a PEM text; at least one.
absl::StatusOr<std::vector<Certificate>> ReadCertificates(const std::string& flag,
                                                          const std::string& path,
                                                          const std::string& pem) {
  Bio bio = MemoryBio(pem);
  std::vector<Certificate> certificates;
  while (true) {
    Certificate certificate(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (!certificate) break;
    certificates.push_back(std::move(certificate));
  }
  ERR_clear_error();  // the end of the text reads as an error
  if (certificates.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--", flag, " ", path, " holds no PEM certificate (-----BEGIN CERTIFICATE-----)"));
  }
  return certificates;
}

}  // namespace

absl::StatusOr<std::optional<TlsFiles>> LoadTlsFiles(const std::string& cert_path,
                                                     const std::string& key_path,
                                                     const std::string& client_ca_path) {
  if (cert_path.empty() && key_path.empty()) {
    if (!client_ca_path.empty()) {
      return absl::InvalidArgumentError(
          "--tls-client-ca needs TLS on: give --tls-cert and --tls-key too");
    }
    return std::optional<TlsFiles>();
  }
  if (cert_path.empty() || key_path.empty()) {
    return absl::InvalidArgumentError("TLS needs both --tls-cert and --tls-key");
  }
  TlsFiles files;
  SCULPT_ASSIGN_OR_RETURN(files.cert_chain_pem, ReadFlagFile("tls-cert", cert_path));
  SCULPT_ASSIGN_OR_RETURN(files.private_key_pem, ReadFlagFile("tls-key", key_path));
  absl::StatusOr<std::vector<Certificate>> chain =
      ReadCertificates("tls-cert", cert_path, files.cert_chain_pem);
  if (!chain.ok()) return chain.status();
  Bio key_bio = MemoryBio(files.private_key_pem);
  PrivateKey key(PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
  if (!key) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--tls-key ", key_path, " holds no unencrypted PEM private key (", OpenSslReason(), ")"));
  }
  if (X509_check_private_key(chain->front().get(), key.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(absl::StrCat("--tls-key ", key_path,
                                                   " is not the key of the certificate in "
                                                   "--tls-cert ",
                                                   cert_path));
  }
  if (!client_ca_path.empty()) {
    SCULPT_ASSIGN_OR_RETURN(files.client_ca_pem, ReadFlagFile("tls-client-ca", client_ca_path));
    absl::StatusOr<std::vector<Certificate>> authorities =
        ReadCertificates("tls-client-ca", client_ca_path, files.client_ca_pem);
    if (!authorities.ok()) return authorities.status();
  }
  return std::optional<TlsFiles>(std::move(files));
}

}  // namespace sculpt
