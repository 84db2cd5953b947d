// C entry points of the session record (include/xg2g/xg2g_session.h).
#include <string>
#include <string_view>

#include "capi/barrier.h"
#include "capi/handles.h"
#include "lib/common/clock.h"
#include "lib/crypto/crypto.h"

namespace {

using xg2g::capi::Fail;
using xg2g::capi::Guard;

static_assert(XG2G_STATE_STOPPED == static_cast<int>(xg2g::SessionState::kStopped));
static_assert(XG2G_R_UPSTREAM_CORRUPT == static_cast<int>(xg2g::Reason::kUpstreamCorrupt));
static_assert(XG2G_EVENT_CANCEL == static_cast<int>(xg2g::SessionEvent::kCancel));

int64_t NowUnixSeconds(int64_t now_ms) {
  if (now_ms == 0) now_ms = xg2g::Clock::Real()->NowUnixMs();
  return now_ms / 1000;
}

const char* OrNull(const xg2g_session* s, const std::string xg2g::SessionRecord::*field) {
  return s == nullptr ? nullptr : (s->rep.*field).c_str();
}

}  // namespace

extern "C" {

const char* xg2g_session_state_str(xg2g_session_state state) {
  const int v = xg2g::capi::EnumBits(state);
  if (v < 0 || v >= xg2g::kSessionStateCount) return "UNKNOWN";
  return xg2g::StateName(static_cast<xg2g::SessionState>(v)).data();
}

const char* xg2g_reason_str(xg2g_reason reason) {
  const int v = xg2g::capi::EnumBits(reason);
  if (v < 0 || v >= xg2g::kReasonCount) return "R_UNKNOWN";
  return xg2g::ReasonName(static_cast<xg2g::Reason>(v)).data();
}

int xg2g_session_state_is_terminal(xg2g_session_state state) {
  const int v = xg2g::capi::EnumBits(state);
  if (v < 0 || v >= xg2g::kSessionStateCount) return 0;
  return xg2g::IsTerminal(static_cast<xg2g::SessionState>(v)) ? 1 : 0;
}

xg2g_status xg2g_session_create(xg2g_session** out, const char* session_id,
                                const char* service_ref, const char* profile, int64_t now_ms) {
  return Guard("xg2g_session_create", [&]() -> xg2g_status {
    XG2G_CAPI_REQUIRE(out, "xg2g_session_create");
    *out = nullptr;
    XG2G_CAPI_REQUIRE(service_ref, "xg2g_session_create");
    if (*service_ref == '\0') return Fail(XG2G_EINVAL, "xg2g_session_create: service_ref is empty");
    if (now_ms < 0) return Fail(XG2G_EINVAL, "xg2g_session_create: now_ms is negative");
    auto handle = std::make_unique<xg2g_session>();
    xg2g::SessionRecord& r = handle->rep;
    if (session_id == nullptr || *session_id == '\0') {
      r.session_id = xg2g::NewSessionId();
    } else {
      absl::Status valid = xg2g::ValidateSessionId(session_id);
      if (!valid.ok()) {
        return Fail(XG2G_EINVAL,
                    "xg2g_session_create: session_id: " + std::string(xg2g::FromAbsl(valid.message())));
      }
      r.session_id = session_id;
    }
    r.service_ref = service_ref;
    if (profile != nullptr && *profile != '\0') r.profile.name = profile;
    r.created_at_unix = r.updated_at_unix = NowUnixSeconds(now_ms);
    *out = handle.release();
    return XG2G_OK;
  });
}

void xg2g_session_destroy(xg2g_session* session) { delete session; }

xg2g_status xg2g_session_clone(xg2g_session** out, const xg2g_session* session) {
  return Guard("xg2g_session_clone", [&]() -> xg2g_status {
    XG2G_CAPI_REQUIRE(out, "xg2g_session_clone");
    *out = nullptr;
    XG2G_CAPI_REQUIRE(session, "xg2g_session_clone");
    *out = new xg2g_session(*session);
    return XG2G_OK;
  });
}

xg2g_status xg2g_session_from_json(xg2g_session** out, const char* json, size_t len) {
  return Guard("xg2g_session_from_json", [&]() -> xg2g_status {
    XG2G_CAPI_REQUIRE(out, "xg2g_session_from_json");
    *out = nullptr;
    XG2G_CAPI_REQUIRE(json, "xg2g_session_from_json");
    auto decoded = xg2g::DecodeSession(std::string_view(json, len));
    if (!decoded.ok()) return xg2g::capi::FromStatus(decoded.status());
    *out = new xg2g_session{std::move(*decoded)};
    return XG2G_OK;
  });
}

xg2g_status xg2g_session_to_json(char** out, const xg2g_session* session) {
  return Guard("xg2g_session_to_json", [&]() -> xg2g_status {
    XG2G_CAPI_REQUIRE(out, "xg2g_session_to_json");
    *out = nullptr;
    XG2G_CAPI_REQUIRE(session, "xg2g_session_to_json");
    *out = xg2g::capi::DupString(xg2g::EncodeSession(session->rep));
    return XG2G_OK;
  });
}

const char* xg2g_session_get_id(const xg2g_session* s) {
  return OrNull(s, &xg2g::SessionRecord::session_id);
}
const char* xg2g_session_get_service_ref(const xg2g_session* s) {
  return OrNull(s, &xg2g::SessionRecord::service_ref);
}
const char* xg2g_session_get_profile(const xg2g_session* s) {
  return s == nullptr ? nullptr : s->rep.profile.name.c_str();
}
xg2g_session_state xg2g_session_get_state(const xg2g_session* s) {
  return s == nullptr ? XG2G_STATE_NEW : static_cast<xg2g_session_state>(s->rep.state);
}
xg2g_reason xg2g_session_get_reason(const xg2g_session* s) {
  return s == nullptr ? XG2G_R_NONE : static_cast<xg2g_reason>(s->rep.reason);
}
const char* xg2g_session_get_reason_detail(const xg2g_session* s) {
  return OrNull(s, &xg2g::SessionRecord::reason_detail);
}
const char* xg2g_session_get_correlation_id(const xg2g_session* s) {
  return OrNull(s, &xg2g::SessionRecord::correlation_id);
}
int64_t xg2g_session_get_created_at_unix(const xg2g_session* s) {
  return s == nullptr ? 0 : s->rep.created_at_unix;
}
int64_t xg2g_session_get_updated_at_unix(const xg2g_session* s) {
  return s == nullptr ? 0 : s->rep.updated_at_unix;
}
int64_t xg2g_session_get_expires_at_unix(const xg2g_session* s) {
  return s == nullptr ? 0 : s->rep.expires_at_unix;
}

const char* xg2g_session_get_context(const xg2g_session* s, const char* key) {
  if (s == nullptr || key == nullptr) return nullptr;
  auto it = s->rep.context_data.find(key);
  return it == s->rep.context_data.end() ? nullptr : it->second.c_str();
}

xg2g_status xg2g_session_set_context(xg2g_session* s, const char* key, const char* value) {
  return Guard("xg2g_session_set_context", [&]() -> xg2g_status {
    XG2G_CAPI_REQUIRE(s, "xg2g_session_set_context");
    XG2G_CAPI_REQUIRE(key, "xg2g_session_set_context");
    if (*key == '\0') return Fail(XG2G_EINVAL, "xg2g_session_set_context: key is empty");
    if (value == nullptr) {
      s->rep.context_data.erase(key);
    } else {
      s->rep.context_data[key] = value;
    }
    return XG2G_OK;
  });
}

xg2g_status xg2g_session_set_correlation_id(xg2g_session* s, const char* id) {
  return Guard("xg2g_session_set_correlation_id", [&]() -> xg2g_status {
    XG2G_CAPI_REQUIRE(s, "xg2g_session_set_correlation_id");
    s->rep.correlation_id = id == nullptr ? "" : id;
    return XG2G_OK;
  });
}

xg2g_status xg2g_session_set_expires_at_unix(xg2g_session* s, int64_t unix_sec) {
  return Guard("xg2g_session_set_expires_at_unix", [&]() -> xg2g_status {
    XG2G_CAPI_REQUIRE(s, "xg2g_session_set_expires_at_unix");
    if (unix_sec < 0) {
      return Fail(XG2G_EINVAL, "xg2g_session_set_expires_at_unix: unix_sec is negative");
    }
    s->rep.expires_at_unix = unix_sec;
    return XG2G_OK;
  });
}

xg2g_status xg2g_session_apply(xg2g_session* s, xg2g_session_event event, xg2g_reason reason,
                               const char* detail, int64_t now_ms) {
  return Guard("xg2g_session_apply", [&]() -> absl::Status {
    if (s == nullptr) return xg2g::InvalidError("xg2g_session_apply: session is NULL");
    const int ev = xg2g::capi::EnumBits(event);
    if (ev < 0 || ev >= xg2g::kSessionEventCount) {
      return xg2g::InvalidError("xg2g_session_apply: event " + std::to_string(ev) + " is unknown");
    }
    const int rs = xg2g::capi::EnumBits(reason);
    if (rs < 0 || rs >= xg2g::kReasonCount) {
      return xg2g::InvalidError("xg2g_session_apply: reason " + std::to_string(rs) + " is unknown");
    }
    if (now_ms < 0) return xg2g::InvalidError("xg2g_session_apply: now_ms is negative");
    return xg2g::ApplyEvent(s->rep, static_cast<xg2g::SessionEvent>(ev),
                            static_cast<xg2g::Reason>(rs), detail == nullptr ? "" : detail,
                            NowUnixSeconds(now_ms));
  });
}

}  // extern "C"
