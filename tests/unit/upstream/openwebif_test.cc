// The OpenWebIF JSON readers on the shapes real receivers send, and on
// broken answers.
#include <doctest/doctest.h>

#include <string>

#include "lib/common/status.h"
#include "lib/upstream/openwebif.h"

namespace xg2g {
namespace {

bool Has(const absl::Status& s, std::string_view text) {
  return FromAbsl(s.message()).find(text) != std::string_view::npos;
}

TEST_CASE("a zap answer reads result and message") {
  auto ok = ParseZapAnswer(R"({"result": true, "message": "Active service is now 'Das Erste HD'"})");
  REQUIRE(ok.ok());
  CHECK(ok->result);
  CHECK(ok->message == "Active service is now 'Das Erste HD'");
  auto refused = ParseZapAnswer(R"({"result": false, "message": "Missing mandatory parameter 'sRef'"})");
  REQUIRE(refused.ok());
  CHECK_FALSE(refused->result);
  auto missing = ParseZapAnswer(R"({"message": "x"})");
  CHECK(CodeOf(missing.status()) == ErrorCode::kCorrupt);
  CHECK(Has(missing.status(), "/api/zap"));
  CHECK(Has(missing.status(), "'result'"));
}

TEST_CASE("getcurrent reads the service from info, and result false means nothing plays") {
  const char* real = R"({
    "info": {"result": true, "name": "Das Erste HD", "namespace": 12582912, "aspect": 3,
             "provider": "ARD", "width": 1280, "height": 720, "apid": 5102, "vpid": 5101,
             "pcrpid": 5101, "pmtpid": 5100, "txtpid": 5104, "tsid": 1019, "onid": 1,
             "sid": 10301, "ref": "1:0:19:283D:3FB:1:C00000:0:0:0:", "iswidescreen": true},
    "now": {"id": 1, "title": "Tagesschau", "begin_timestamp": 0, "duration_sec": 900,
            "shortdesc": "", "longdesc": "", "sref": "1:0:19:283D:3FB:1:C00000:0:0:0:",
            "sname": "Das Erste HD", "now_timestamp": 0, "remaining": 0, "provider": "ARD"},
    "next": {"id": 0}})";
  auto current = ParseCurrentService(real);
  REQUIRE(current.ok());
  CHECK(current->service_ref == "1:0:19:283D:3FB:1:C00000:0:0:0:");
  CHECK(current->name == "Das Erste HD");
  CHECK(current->provider == "ARD");

  auto none = ParseCurrentService(
      R"({"info": {"result": false, "name": "", "ref": "1:0:0:0:0:0:0:0:0:0:"}, "now": {}, "next": {}})");
  REQUIRE(none.ok());
  CHECK(none->service_ref.empty());

  CHECK(CodeOf(ParseCurrentService("{}").status()) == ErrorCode::kCorrupt);
  CHECK(CodeOf(ParseCurrentService(R"({"info": []})").status()) == ErrorCode::kCorrupt);
  CHECK(CodeOf(ParseCurrentService(R"({"info": {"ref": [1]}})").status()) == ErrorCode::kCorrupt);
}

TEST_CASE("about reads the box and the service") {
  auto about = ParseAboutAnswer(R"({
    "info": {"brand": "Vu+", "model": "Uno 4K SE", "webifver": "OWIF 1.5.2", "tuners": []},
    "service": {"result": true, "name": "ZDF HD", "ref": "1:0:19:2B66:3F3:1:C00000:0:0:0:"}})");
  REQUIRE(about.ok());
  CHECK(about->brand == "Vu+");
  CHECK(about->model == "Uno 4K SE");
  CHECK(about->webif_version == "OWIF 1.5.2");
  CHECK(about->service.service_ref == "1:0:19:2B66:3F3:1:C00000:0:0:0:");
  CHECK(CodeOf(ParseAboutAnswer(R"({"service": {}})").status()) == ErrorCode::kCorrupt);
}

TEST_CASE("signal values are read as numbers or strings; without a flag, lock means snr > 0") {
  auto real = ParseSignalInfo(R"({"tunertype": "DVB-S2", "tunernumber": 1, "snr": 92,
                                  "snr_db": "14.29", "agc": 85, "ber": 0, "inStandby": "false"})");
  REQUIRE(real.ok());
  CHECK(real->snr_percent.value() == doctest::Approx(92));
  CHECK(real->snr_db.value() == doctest::Approx(14.29));
  CHECK(real->agc_percent.value() == doctest::Approx(85));
  CHECK(real->ber.value() == doctest::Approx(0));
  CHECK(real->tuner_type == "DVB-S2");
  CHECK(real->tuner_number.value() == 1);
  CHECK_FALSE(real->in_standby);
  CHECK(real->locked);
  CHECK_FALSE(real->lock_reported);
  CHECK(DescribeSignal(*real) == "snr 92% (14.29 dB), agc 85%, ber 0, locked");

  // No frontend data: every value is "".
  auto empty = ParseSignalInfo(R"({"tunertype": "", "tunernumber": "", "snr": "", "snr_db": "",
                                   "agc": "", "ber": "", "inStandby": "false"})");
  REQUIRE(empty.ok());
  CHECK_FALSE(empty->snr_percent.has_value());
  CHECK_FALSE(empty->tuner_number.has_value());
  CHECK_FALSE(empty->locked);
  CHECK(DescribeSignal(*empty) == "snr n/a, agc n/a, ber n/a, no lock");

  auto strings = ParseSignalInfo(R"({"snr": "75 %", "snr_db": "11.5 dB", "agc": "60", "ber": "12"})");
  REQUIRE(strings.ok());
  CHECK(strings->snr_percent.value() == doctest::Approx(75));
  CHECK(strings->snr_db.value() == doctest::Approx(11.5));
  CHECK(strings->ber.value() == doctest::Approx(12));
  CHECK(strings->locked);

  auto zero = ParseSignalInfo(R"({"snr": 0, "agc": 0, "ber": 0})");
  REQUIRE(zero.ok());
  CHECK_FALSE(zero->locked);

  auto standby = ParseSignalInfo(R"({"snr": 90, "inStandby": "true"})");
  REQUIRE(standby.ok());
  CHECK(standby->in_standby);
  CHECK_FALSE(standby->locked);
}

TEST_CASE("an explicit lock flag wins, as a boolean, a number or a string") {
  auto flag = ParseSignalInfo(R"({"snr": 90, "lock": false})");
  REQUIRE(flag.ok());
  CHECK_FALSE(flag->locked);
  CHECK(flag->lock_reported);
  auto number = ParseSignalInfo(R"({"snr": 0, "tuner_locked": 1})");
  REQUIRE(number.ok());
  CHECK(number->locked);
  auto text = ParseSignalInfo(R"({"snr": "", "lock": "true"})");
  REQUIRE(text.ok());
  CHECK(text->locked);
  auto bad = ParseSignalInfo(R"({"lock": "maybe"})");
  CHECK(CodeOf(bad.status()) == ErrorCode::kCorrupt);
  CHECK(Has(bad.status(), "'lock'"));
}

TEST_CASE("answers that are not JSON objects are ECORRUPT naming the endpoint") {
  for (const char* body : {"", "<html>Unauthorized</html>", "[1,2]", "{\"result\": tru", "null"}) {
    auto s = ParseSignalInfo(body).status();
    CHECK_MESSAGE(CodeOf(s) == ErrorCode::kCorrupt, body);
    CHECK(Has(s, "/api/signal"));
  }
}

TEST_CASE("service refs compare without case, trailing colons or percent-encoding") {
  CHECK(SameServiceRef("1:0:19:283D:3FB:1:C00000:0:0:0:", "1:0:19:283d:3fb:1:c00000:0:0:0"));
  CHECK(SameServiceRef("1%3A0%3A19%3A283D%3A3FB%3A1%3AC00000%3A0%3A0%3A0%3A",
                       "1:0:19:283D:3FB:1:C00000:0:0:0:"));
  CHECK_FALSE(SameServiceRef("1:0:19:283D:3FB:1:C00000:0:0:0:", "1:0:19:283E:3FB:1:C00000:0:0:0:"));
  CHECK_FALSE(SameServiceRef("", ""));
  CHECK_FALSE(SameServiceRef("1:0:1", ""));
}

}  // namespace
}  // namespace xg2g
