// C entry points of the store (include/xg2g/xg2g_store.h).
#include <string>
#include <string_view>

#include "capi/barrier.h"
#include "capi/handles.h"

namespace {

using xg2g::capi::Fail;
using xg2g::capi::FromStatus;
using xg2g::capi::Guard;

// Names the function in a core error so the caller sees where it came from.
absl::Status Prefixed(std::string_view function, const absl::Status& status) {
  if (status.ok()) return status;
  return xg2g::MakeError(xg2g::CodeOf(status),
                         std::string(function) + ": " + std::string(xg2g::FromAbsl(status.message())));
}

xg2g_status CheckTtl(const char* function, int64_t ttl_ms) {
  if (ttl_ms <= 0) {
    return Fail(XG2G_EINVAL, std::string(function) + ": ttl_ms must be > 0, got " +
                                 std::to_string(ttl_ms));
  }
  return XG2G_OK;
}

}  // namespace

extern "C" {

xg2g_status xg2g_store_open(xg2g_store** out, const char* uri) {
  return Guard("xg2g_store_open", [&]() -> xg2g_status {
    XG2G_CAPI_REQUIRE(out, "xg2g_store_open");
    *out = nullptr;
    XG2G_CAPI_REQUIRE(uri, "xg2g_store_open");
    auto store = xg2g::OpenStore(uri);
    if (!store.ok()) return FromStatus(Prefixed("xg2g_store_open", store.status()));
    *out = new xg2g_store{std::move(*store)};
    return XG2G_OK;
  });
}

void xg2g_store_close(xg2g_store* store) { delete store; }

xg2g_status xg2g_store_put_session(xg2g_store* store, const xg2g_session* session) {
  return Guard("xg2g_store_put_session", [&]() -> xg2g_status {
    XG2G_CAPI_REQUIRE(store, "xg2g_store_put_session");
    XG2G_CAPI_REQUIRE(session, "xg2g_store_put_session");
    return FromStatus(store->rep->PutSession(session->rep));
  });
}

xg2g_status xg2g_store_get_session(xg2g_session** out, xg2g_store* store,
                                   const char* session_id) {
  return Guard("xg2g_store_get_session", [&]() -> xg2g_status {
    XG2G_CAPI_REQUIRE(out, "xg2g_store_get_session");
    *out = nullptr;
    XG2G_CAPI_REQUIRE(store, "xg2g_store_get_session");
    XG2G_CAPI_REQUIRE(session_id, "xg2g_store_get_session");
    auto record = store->rep->GetSession(session_id);
    if (!record.ok()) return FromStatus(record.status());
    *out = new xg2g_session{std::move(*record)};
    return XG2G_OK;
  });
}

xg2g_status xg2g_store_update_session(xg2g_session** out, xg2g_store* store,
                                      const char* session_id, xg2g_session_update_fn fn,
                                      void* user_data) {
  return Guard("xg2g_store_update_session", [&]() -> xg2g_status {
    if (out != nullptr) *out = nullptr;
    XG2G_CAPI_REQUIRE(store, "xg2g_store_update_session");
    XG2G_CAPI_REQUIRE(session_id, "xg2g_store_update_session");
    XG2G_CAPI_REQUIRE(fn, "xg2g_store_update_session");
    auto updated = store->rep->UpdateSession(
        session_id, [&](xg2g::SessionRecord& record) -> absl::Status {
          // The callback sees a handle over a private copy; its edits are kept
          // only when it returns XG2G_OK.
          xg2g_session scratch{record};
          const xg2g_status rc = fn(&scratch, user_data);
          if (rc != XG2G_OK) {
            std::string message = xg2g_last_error();
            if (message.empty()) message = "update callback failed";
            return xg2g::MakeError(static_cast<xg2g::ErrorCode>(rc), message);
          }
          // The id is the record's key: a callback may not move the record.
          if (scratch.rep.session_id != record.session_id) {
            return xg2g::InvalidError("update callback changed the session id");
          }
          record = std::move(scratch.rep);
          return absl::OkStatus();
        });
    if (!updated.ok()) return FromStatus(updated.status());
    if (out != nullptr) *out = new xg2g_session{std::move(*updated)};
    return XG2G_OK;
  });
}

xg2g_status xg2g_store_delete_session(xg2g_store* store, const char* session_id) {
  return Guard("xg2g_store_delete_session", [&]() -> xg2g_status {
    XG2G_CAPI_REQUIRE(store, "xg2g_store_delete_session");
    XG2G_CAPI_REQUIRE(session_id, "xg2g_store_delete_session");
    return FromStatus(store->rep->DeleteSession(session_id));
  });
}

xg2g_status xg2g_store_scan_sessions(xg2g_store* store, xg2g_session_scan_fn fn,
                                     void* user_data) {
  return Guard("xg2g_store_scan_sessions", [&]() -> xg2g_status {
    XG2G_CAPI_REQUIRE(store, "xg2g_store_scan_sessions");
    XG2G_CAPI_REQUIRE(fn, "xg2g_store_scan_sessions");
    return FromStatus(store->rep->ScanSessions([&](const xg2g::SessionRecord& record) {
      const xg2g_session view{record};
      return fn(&view, user_data) == 0;
    }));
  });
}

xg2g_status xg2g_store_list_sessions(xg2g_session_list** out, size_t* out_total,
                                     xg2g_store* store, size_t offset, size_t limit) {
  return Guard("xg2g_store_list_sessions", [&]() -> xg2g_status {
    XG2G_CAPI_REQUIRE(out, "xg2g_store_list_sessions");
    *out = nullptr;
    if (out_total != nullptr) *out_total = 0;
    XG2G_CAPI_REQUIRE(store, "xg2g_store_list_sessions");
    auto page = store->rep->ListSessions(offset, limit);
    if (!page.ok()) return FromStatus(page.status());
    auto list = std::make_unique<xg2g_session_list>();
    list->items.reserve(page->sessions.size());
    for (auto& record : page->sessions) list->items.push_back(xg2g_session{std::move(record)});
    if (out_total != nullptr) *out_total = page->total;
    *out = list.release();
    return XG2G_OK;
  });
}

size_t xg2g_session_list_count(const xg2g_session_list* list) {
  return list == nullptr ? 0 : list->items.size();
}

const xg2g_session* xg2g_session_list_at(const xg2g_session_list* list, size_t index) {
  if (list == nullptr || index >= list->items.size()) return nullptr;
  return &list->items[index];
}

void xg2g_session_list_destroy(xg2g_session_list* list) { delete list; }

xg2g_status xg2g_store_put_session_idempotent(char** out_existing_id, xg2g_store* store,
                                              const xg2g_session* session, const char* key,
                                              const char* fingerprint, int64_t ttl_ms) {
  return Guard("xg2g_store_put_session_idempotent", [&]() -> xg2g_status {
    constexpr const char* kFn = "xg2g_store_put_session_idempotent";
    XG2G_CAPI_REQUIRE(out_existing_id, kFn);
    *out_existing_id = nullptr;
    XG2G_CAPI_REQUIRE(store, kFn);
    XG2G_CAPI_REQUIRE(session, kFn);
    XG2G_CAPI_REQUIRE(key, kFn);
    XG2G_CAPI_REQUIRE(fingerprint, kFn);
    if (const xg2g_status rc = CheckTtl(kFn, ttl_ms); rc != XG2G_OK) return rc;
    auto outcome = store->rep->PutSessionWithIdempotency(session->rep, key, fingerprint, ttl_ms);
    if (!outcome.ok()) return FromStatus(outcome.status());
    if (outcome->stored) return XG2G_OK;
    if (outcome->existing.fingerprint != fingerprint) {
      return Fail(XG2G_ECONFLICT, std::string(kFn) + ": idempotency key '" + key +
                                      "' was first used with a different request (session " +
                                      outcome->existing.session_id + ")");
    }
    *out_existing_id = xg2g::capi::DupString(outcome->existing.session_id);
    return XG2G_OK;
  });
}

xg2g_status xg2g_store_lease_acquire(uint64_t* out_token, xg2g_store* store, const char* key,
                                     const char* owner, int64_t ttl_ms) {
  return Guard("xg2g_store_lease_acquire", [&]() -> xg2g_status {
    if (out_token != nullptr) *out_token = 0;
    XG2G_CAPI_REQUIRE(store, "xg2g_store_lease_acquire");
    XG2G_CAPI_REQUIRE(key, "xg2g_store_lease_acquire");
    XG2G_CAPI_REQUIRE(owner, "xg2g_store_lease_acquire");
    if (const xg2g_status rc = CheckTtl("xg2g_store_lease_acquire", ttl_ms); rc != XG2G_OK) return rc;
    auto grant = store->rep->AcquireLease(key, owner, ttl_ms);
    if (!grant.ok()) return FromStatus(grant.status());
    if (out_token != nullptr) *out_token = grant->fencing_token;
    return XG2G_OK;
  });
}

xg2g_status xg2g_store_lease_renew(xg2g_store* store, const char* key, const char* owner,
                                   int64_t ttl_ms) {
  return Guard("xg2g_store_lease_renew", [&]() -> xg2g_status {
    XG2G_CAPI_REQUIRE(store, "xg2g_store_lease_renew");
    XG2G_CAPI_REQUIRE(key, "xg2g_store_lease_renew");
    XG2G_CAPI_REQUIRE(owner, "xg2g_store_lease_renew");
    if (const xg2g_status rc = CheckTtl("xg2g_store_lease_renew", ttl_ms); rc != XG2G_OK) return rc;
    return FromStatus(store->rep->RenewLease(key, owner, ttl_ms).status());
  });
}

xg2g_status xg2g_store_lease_release(xg2g_store* store, const char* key, const char* owner) {
  return Guard("xg2g_store_lease_release", [&]() -> xg2g_status {
    XG2G_CAPI_REQUIRE(store, "xg2g_store_lease_release");
    XG2G_CAPI_REQUIRE(key, "xg2g_store_lease_release");
    XG2G_CAPI_REQUIRE(owner, "xg2g_store_lease_release");
    return FromStatus(store->rep->ReleaseLease(key, owner));
  });
}

xg2g_status xg2g_store_list_leases(xg2g_lease_list** out, xg2g_store* store) {
  return Guard("xg2g_store_list_leases", [&]() -> xg2g_status {
    XG2G_CAPI_REQUIRE(out, "xg2g_store_list_leases");
    *out = nullptr;
    XG2G_CAPI_REQUIRE(store, "xg2g_store_list_leases");
    auto leases = store->rep->ListLeases();
    if (!leases.ok()) return FromStatus(leases.status());
    *out = new xg2g_lease_list{std::move(*leases), store->rep->NowMs()};
    return XG2G_OK;
  });
}

size_t xg2g_lease_list_count(const xg2g_lease_list* list) {
  return list == nullptr ? 0 : list->items.size();
}

const char* xg2g_lease_list_key(const xg2g_lease_list* list, size_t index) {
  if (list == nullptr || index >= list->items.size()) return nullptr;
  return list->items[index].key.c_str();
}

const char* xg2g_lease_list_owner(const xg2g_lease_list* list, size_t index) {
  if (list == nullptr || index >= list->items.size()) return nullptr;
  return list->items[index].owner.c_str();
}

uint64_t xg2g_lease_list_fencing_token(const xg2g_lease_list* list, size_t index) {
  if (list == nullptr || index >= list->items.size()) return 0;
  return list->items[index].fencing_token;
}

int64_t xg2g_lease_list_expires_in_ms(const xg2g_lease_list* list, size_t index) {
  if (list == nullptr || index >= list->items.size()) return 0;
  const int64_t left = list->items[index].expires_at_ms - list->now_ms;
  return left > 0 ? left : 0;
}

void xg2g_lease_list_destroy(xg2g_lease_list* list) { delete list; }

xg2g_status xg2g_store_check(xg2g_store_report** out, xg2g_store* store) {
  return Guard("xg2g_store_check", [&]() -> xg2g_status {
    XG2G_CAPI_REQUIRE(out, "xg2g_store_check");
    *out = nullptr;
    XG2G_CAPI_REQUIRE(store, "xg2g_store_check");
    auto report = store->rep->Check();
    if (!report.ok()) return FromStatus(Prefixed("xg2g_store_check", report.status()));
    *out = new xg2g_store_report{std::move(*report)};
    return XG2G_OK;
  });
}

size_t xg2g_store_report_sessions(const xg2g_store_report* report) {
  return report == nullptr ? 0 : report->rep.sessions;
}

size_t xg2g_store_report_leases(const xg2g_store_report* report) {
  return report == nullptr ? 0 : report->rep.leases;
}

int64_t xg2g_store_report_idempotency_keys(const xg2g_store_report* report) {
  return report == nullptr ? -1 : report->rep.idempotency_keys;
}

size_t xg2g_store_report_problem_count(const xg2g_store_report* report) {
  return report == nullptr ? 0 : report->rep.problems.size();
}

const char* xg2g_store_report_problem(const xg2g_store_report* report, size_t index) {
  if (report == nullptr || index >= report->rep.problems.size()) return nullptr;
  return report->rep.problems[index].c_str();
}

void xg2g_store_report_destroy(xg2g_store_report* report) { delete report; }

}  // extern "C"
