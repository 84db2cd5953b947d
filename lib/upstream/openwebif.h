// Readers of the OpenWebIF JSON answers the receiver client needs, as real
// receivers send them (docs/receiver.md has examples):
//   /api/zap?sRef=REF  {"result": true, "message": "Active service is now '...'"}
//   /api/getcurrent    {"info": {"result": true, "ref": "1:0:19:...", "name": ..., "provider": ...},
//                       "now": {...}, "next": {...}}
//   /api/about         {"info": {"brand": ..., "model": ..., "webifver": ...}, "service": {<as info>}}
//   /api/signal        {"snr": 92, "snr_db": "14.29", "agc": 85, "ber": 0, "tunertype": "DVB-S2",
//                       "tunernumber": 0, "inStandby": "false"[, "lock": true]}
// Signal values are numbers or strings ("" when the receiver has no
// frontend data); both are read. Unknown fields are ignored, a document that
// is not JSON or has the wrong shape is ECORRUPT naming the endpoint and the
// field. Pure functions, thread-safe; each input is at most a few KiB.
#ifndef XG2G_LIB_UPSTREAM_OPENWEBIF_H_
#define XG2G_LIB_UPSTREAM_OPENWEBIF_H_

#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace xg2g {

struct ZapAnswer {
  bool result = false;
  std::string message;
};

struct CurrentService {
  std::string service_ref;  // "" when nothing plays
  std::string name;
  std::string provider;
};

struct AboutAnswer {
  std::string brand;
  std::string model;
  std::string webif_version;
  CurrentService service;
};

struct SignalInfo {
  std::optional<double> snr_percent;  // "snr"
  std::optional<double> snr_db;       // "snr_db"
  std::optional<double> agc_percent;  // "agc"
  std::optional<double> ber;          // "ber"
  std::string tuner_type;             // "tunertype"
  std::optional<int> tuner_number;    // "tunernumber"
  bool in_standby = false;            // "inStandby"
  // The receiver's own lock flag ("lock" or "tuner_locked": a boolean, 0/1
  // or "true"/"false") when it sends one; otherwise the tuner counts as
  // locked when the SNR is above 0 and the box is not in standby.
  bool locked = false;
  bool lock_reported = false;  // the flag came from the receiver
};

[[nodiscard]] absl::StatusOr<ZapAnswer> ParseZapAnswer(std::string_view json);
[[nodiscard]] absl::StatusOr<CurrentService> ParseCurrentService(std::string_view json);
[[nodiscard]] absl::StatusOr<AboutAnswer> ParseAboutAnswer(std::string_view json);
[[nodiscard]] absl::StatusOr<SignalInfo> ParseSignalInfo(std::string_view json);

// Whether two Enigma2 service references name the same service: compared
// after percent-decoding, without trailing ':' and ignoring the case of the
// hexadecimal fields.
[[nodiscard]] bool SameServiceRef(std::string_view a, std::string_view b);

// "snr 92%, 14.29 dB, agc 85%, ber 0, locked" for messages.
[[nodiscard]] std::string DescribeSignal(const SignalInfo& signal);

}  // namespace xg2g

#endif  // XG2G_LIB_UPSTREAM_OPENWEBIF_H_
