/*
 * libxg2g: session store, idempotency keys and leases.
 *
 * A store is opened by URI: "memory:" (in-process, lost at close),
 * "lmdb:DIR" (docs/lmdb.md) or
 * "redis://[[USER]:PASSWORD@]HOST[:PORT][/DB][?prefix=P&pool=N&timeout_ms=N&cache=N]"
 * (several daemons share one Redis server or cluster; the password may come
 * from XG2G_REDIS_PASSWORD instead and is never logged; session reads are
 * answered from a cache the server keeps current, cache=0 turns it off;
 * docs/redis.md).
 *
 * A store handle is thread-safe: any number of threads may call into it at
 * once. Callbacks (scan) run on the calling thread, never while the store holds
 * a lock, so they may call back into the store.
 */
#ifndef XG2G_STORE_H
#define XG2G_STORE_H

#include "xg2g_common.h"
#include "xg2g_session.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct xg2g_store xg2g_store;
typedef struct xg2g_session_list xg2g_session_list;
typedef struct xg2g_lease_list xg2g_lease_list;
typedef struct xg2g_store_report xg2g_store_report;

/*
 * Opens a store. Errors: XG2G_EINVAL (NULL out or uri, malformed uri; the
 * message names the part), XG2G_EUNSUPPORTED (unknown scheme),
 * XG2G_EUNAVAILABLE (backend unreachable). *out is the caller's; end it with
 * xg2g_store_close(). Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_store_open(xg2g_store **out, const char *uri);

/* Closes the store and frees the handle. NULL is ignored. Since 0.1. */
XG2G_API(void) xg2g_store_close(xg2g_store *store);

/*
 * Stores a copy of the session, replacing any record with the same id.
 * Errors: XG2G_EINVAL, XG2G_EUNAVAILABLE, XG2G_ESTOREFULL. Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_store_put_session(xg2g_store *store, const xg2g_session *session);

/*
 * Reads a session. Errors: XG2G_ENOTFOUND (no such id), XG2G_EINVAL (NULL or
 * unsafe id), XG2G_ECORRUPT (record does not decode). *out is the caller's.
 * Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_store_get_session(xg2g_session **out, xg2g_store *store,
                                             const char *session_id);

/*
 * Read-modify-write of one record, atomic per record. fn receives a private
 * copy and may change it (xg2g_session_apply, setters); returning non-XG2G_OK
 * aborts with that status and nothing is written. On a concurrent change the
 * store calls fn again on the fresh record (at most a bounded number of
 * times, then XG2G_ECONFLICT). fn runs on the calling thread without store
 * locks held. If out is non-NULL it receives the stored result.
 * Errors: XG2G_ENOTFOUND, XG2G_ECONFLICT, XG2G_EINVAL, fn's own status.
 * Since 0.1.
 */
typedef xg2g_status (*xg2g_session_update_fn)(xg2g_session *session, void *user_data);
XG2G_API(xg2g_status) xg2g_store_update_session(xg2g_session **out, xg2g_store *store,
                                                const char *session_id,
                                                xg2g_session_update_fn fn, void *user_data);

/* Deletes a session. Errors: XG2G_ENOTFOUND, XG2G_EINVAL. Since 0.1. */
XG2G_API(xg2g_status) xg2g_store_delete_session(xg2g_store *store, const char *session_id);

/*
 * Calls fn for every session (in no particular order) on a snapshot taken
 * before the first call; fn returning non-zero stops the scan. The session
 * passed to fn is borrowed for the duration of the call.
 * Errors: XG2G_EINVAL, XG2G_EUNAVAILABLE, XG2G_ECORRUPT. Since 0.1.
 */
typedef int (*xg2g_session_scan_fn)(const xg2g_session *session, void *user_data);
XG2G_API(xg2g_status) xg2g_store_scan_sessions(xg2g_store *store, xg2g_session_scan_fn fn,
                                               void *user_data);

/*
 * One page of sessions ordered by session id: skips offset, returns at most
 * limit (1..1000). *out_total (optional) receives the number of sessions.
 * Errors: XG2G_EINVAL (limit out of range). *out is the caller's; end it with
 * xg2g_session_list_destroy(). Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_store_list_sessions(xg2g_session_list **out, size_t *out_total,
                                               xg2g_store *store, size_t offset, size_t limit);
XG2G_API(size_t) xg2g_session_list_count(const xg2g_session_list *list);
/* Borrowed element, valid until the list is destroyed; NULL when out of range. */
XG2G_API(const xg2g_session *) xg2g_session_list_at(const xg2g_session_list *list, size_t index);
XG2G_API(void) xg2g_session_list_destroy(xg2g_session_list *list);

/*
 * Stores the session and the idempotency key together, or neither.
 * key: scoped by the caller (include the principal); fingerprint: a digest of
 * the request the key was first used with; ttl_ms: key lifetime (> 0).
 * When the key is new: both are stored, *out_existing_id is NULL.
 * When the key exists with the same fingerprint: nothing is written and
 * *out_existing_id receives the first session's id (free with xg2g_free).
 * Errors: XG2G_ECONFLICT (key exists with another fingerprint; nothing
 * written), XG2G_EINVAL, XG2G_EUNAVAILABLE. Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_store_put_session_idempotent(char **out_existing_id,
                                                        xg2g_store *store,
                                                        const xg2g_session *session,
                                                        const char *key,
                                                        const char *fingerprint, int64_t ttl_ms);

/*
 * Takes the lease `key` for `owner` for ttl_ms. A free or expired lease is
 * granted with a new fencing token, strictly greater than every earlier token
 * for this key; a lease already held by the same owner is renewed and keeps
 * its token. *out_token (optional) receives the token.
 * Errors: XG2G_EBUSY (held by another owner), XG2G_EINVAL. Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_store_lease_acquire(uint64_t *out_token, xg2g_store *store,
                                               const char *key, const char *owner,
                                               int64_t ttl_ms);

/*
 * Extends a lease the owner holds to ttl_ms from now.
 * Errors: XG2G_ENOTFOUND (not held: released or expired), XG2G_ECONFLICT
 * (held by another owner), XG2G_EINVAL. Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_store_lease_renew(xg2g_store *store, const char *key,
                                             const char *owner, int64_t ttl_ms);

/*
 * Releases a lease the owner holds.
 * Errors: XG2G_ENOTFOUND (not held), XG2G_ECONFLICT (held by another owner),
 * XG2G_EINVAL. Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_store_lease_release(xg2g_store *store, const char *key,
                                               const char *owner);

/*
 * The unexpired leases, ordered by key. *out is the caller's; end it with
 * xg2g_lease_list_destroy(). Reads only.
 * Errors: XG2G_EINVAL (NULL argument), XG2G_EUNAVAILABLE, XG2G_ECORRUPT (a
 * lease record that does not decode; the message names its key). On failure
 * *out is NULL. Thread-safe. Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_store_list_leases(xg2g_lease_list **out, xg2g_store *store);
XG2G_API(size_t) xg2g_lease_list_count(const xg2g_lease_list *list);
/* Borrowed strings, valid until the list is destroyed; NULL when out of range. */
XG2G_API(const char *) xg2g_lease_list_key(const xg2g_lease_list *list, size_t index);
XG2G_API(const char *) xg2g_lease_list_owner(const xg2g_lease_list *list, size_t index);
/* 0 when out of range. */
XG2G_API(uint64_t) xg2g_lease_list_fencing_token(const xg2g_lease_list *list, size_t index);
/* Time left by the store's clock when the list was read; 0 when out of range. */
XG2G_API(int64_t) xg2g_lease_list_expires_in_ms(const xg2g_lease_list *list, size_t index);
XG2G_API(void) xg2g_lease_list_destroy(xg2g_lease_list *list);

/*
 * Reads the whole store and reports what does not add up: a record that
 * fails to decode, a listing that disagrees with a scan (compared only while
 * the store holds still, so other writers at work are not reported), a
 * lease without an owner or token; the LMDB store also walks its databases and checks its
 * revision and fencing-token counters. Problems go into the report, they are
 * not errors. Writes nothing. *out is the caller's; end it with
 * xg2g_store_report_destroy().
 * Errors: XG2G_EINVAL (NULL argument), XG2G_EUNAVAILABLE (the store cannot
 * be read at all). On failure *out is NULL. Thread-safe. Since 0.1.
 */
XG2G_API(xg2g_status) xg2g_store_check(xg2g_store_report **out, xg2g_store *store);
/* Counts found by the check; 0 for a NULL report. */
XG2G_API(size_t) xg2g_store_report_sessions(const xg2g_store_report *report);
XG2G_API(size_t) xg2g_store_report_leases(const xg2g_store_report *report);
/* -1 when the backend does not count its idempotency keys (or NULL). */
XG2G_API(int64_t) xg2g_store_report_idempotency_keys(const xg2g_store_report *report);
/* The problems, each a sentence naming the key it is about; none: consistent. */
XG2G_API(size_t) xg2g_store_report_problem_count(const xg2g_store_report *report);
/* Borrowed, valid until the report is destroyed; NULL when out of range. */
XG2G_API(const char *) xg2g_store_report_problem(const xg2g_store_report *report, size_t index);
XG2G_API(void) xg2g_store_report_destroy(xg2g_store_report *report);

#ifdef __cplusplus
}
#endif

#endif /* XG2G_STORE_H */
