/*
 * extension/guard.h — the boundary between PostgreSQL's errors (longjmp) and C++ exceptions (unwind).
 *
 * Two directions, two tools:
 *
 *  1. C++ -> PostgreSQL. Every function PostgreSQL calls is declared with PGFLEET_SQL_FUNCTION (SQL
 *     functions) or runs its body through pgfleet::guard_entry (worker mains, hooks). The guard
 *     catches every exception, copies what it needs into fixed-size buffers on the stack (no
 *     allocation, so the copy itself cannot fail), leaves the catch block, and only then raises the
 *     PostgreSQL error. No ereport ever runs inside a catch block or a destructor.
 *
 *  2. PostgreSQL -> C++. Inside C++ code, a PostgreSQL call that can ERROR runs through pg_call(),
 *     which catches the ERROR with PG_TRY, copies it (CopyErrorData), clears the error state and
 *     throws it on as pgfleet::PgError, so C++ frames unwind normally. The guard re-raises a PgError
 *     with ReThrowError, keeping the original errcode, message, detail and hint. The lambda given
 *     to pg_call must not own C++ objects with destructors (a longjmp skips them); code that throws
 *     inside it is caught before it can cross PG_TRY's setjmp frame and rethrown after PG_END_TRY.
 *
 * SqlError is the exception pgfleet code throws to produce a specific PostgreSQL error
 * (errcode, message in PostgreSQL style: lower-case, no period; detail and hint as sentences).
 */
#pragma once

#include <exception>
#include <string>
#include <utility>

#include "extension/pg.h"

namespace pgfleet {

/* A PostgreSQL error to raise: errcode plus message, detail and hint. */
class SqlError : public std::exception {
public:
    SqlError(int sqlerrcode, std::string message, std::string detail = {}, std::string hint = {})
        : code_(sqlerrcode), message_(std::move(message)), detail_(std::move(detail)), hint_(std::move(hint))
    {
    }
    const char *what() const noexcept override { return message_.c_str(); }
    int code() const noexcept { return code_; }
    const std::string &detail() const noexcept { return detail_; }
    const std::string &hint() const noexcept { return hint_; }

private:
    int code_;
    std::string message_, detail_, hint_;
};

/* text as a detail or hint sentence in PostgreSQL's style: capital first letter, final period. */
inline std::string as_sentence(std::string text)
{
    if (!text.empty() && text[0] >= 'a' && text[0] <= 'z')
        text[0] = static_cast<char>(text[0] - 'a' + 'A');
    if (!text.empty() && text.back() != '.' && text.back() != '?' && text.back() != '!')
        text.push_back('.');
    return text;
}

/* A PostgreSQL ERROR caught by pg_call, carried across C++ frames; owns its ErrorData. */
class PgError : public std::exception {
public:
    explicit PgError(ErrorData *edata) : edata_(edata) {}
    PgError(PgError &&other) noexcept : edata_(std::exchange(other.edata_, nullptr)) {}
    PgError(const PgError &) = delete;
    ~PgError() override = default; /* ErrorData is palloc'd: its memory context frees it */
    const char *what() const noexcept override { return edata_ && edata_->message ? edata_->message : "postgresql error"; }
    const ErrorData *data() const noexcept { return edata_; }
    ErrorData *release() noexcept { return std::exchange(edata_, nullptr); }

private:
    ErrorData *edata_;
};

/* What a guard keeps of an exception until it has left the catch block. Fixed buffers: no allocation. */
struct GuardFailure {
    bool failed = false;
    int sqlerrcode = 0;
    ErrorData *pg_error = nullptr;
    char message[1024] = {0};
    char detail[2048] = {0};
    char hint[512] = {0};

    void set(int code, const char *msg, const char *det, const char *hnt) noexcept;
    /* Raises the kept error as a PostgreSQL ERROR. Never returns. */
    [[noreturn]] void raise() noexcept(false);
};

/* Runs fn, turning any escaping exception into a PostgreSQL ERROR (see the file comment). */
template <typename Fn>
auto guard_entry(Fn &&fn) -> decltype(fn())
{
    GuardFailure failure;
    try {
        return fn();
    } catch (PgError &e) {
        failure.failed = true;
        failure.pg_error = e.release();
    } catch (const SqlError &e) {
        failure.set(e.code(), e.what(), e.detail().c_str(), e.hint().c_str());
    } catch (const std::exception &e) {
        failure.set(ERRCODE_INTERNAL_ERROR, e.what(), "", "");
    } catch (...) {
        failure.set(ERRCODE_INTERNAL_ERROR, "unknown C++ exception", "", "");
    }
    failure.raise();
}

/* Runs fn, which calls PostgreSQL; a PostgreSQL ERROR inside it is thrown on as PgError. */
template <typename Fn>
void pg_call(Fn &&fn)
{
    MemoryContext caller_context = CurrentMemoryContext;
    ErrorData *volatile edata = nullptr;
    std::exception_ptr cpp_exception;
    PG_TRY();
    {
        try {
            fn();
        } catch (...) {
            cpp_exception = std::current_exception(); /* never let it cross PG_TRY's frame */
        }
    }
    PG_CATCH();
    {
        MemoryContextSwitchTo(caller_context);
        edata = CopyErrorData();
        FlushErrorState();
    }
    PG_END_TRY();
    if (cpp_exception)
        std::rethrow_exception(cpp_exception);
    if (edata != nullptr)
        throw PgError(edata);
}

} // namespace pgfleet

/*
 * Declares a SQL-callable function NAME whose body follows, run through the guard:
 *     PGFLEET_SQL_FUNCTION(fleet_worker_status) { ... return datum; }
 */
#define PGFLEET_SQL_FUNCTION(name)                                                                 \
    static Datum name##_guarded(FunctionCallInfo fcinfo);                                          \
    extern "C" {                                                                                   \
    PGDLLEXPORT Datum name(PG_FUNCTION_ARGS);                                                      \
    PG_FUNCTION_INFO_V1(name);                                                                     \
    Datum name(PG_FUNCTION_ARGS) { return pgfleet::guard_entry([&] { return name##_guarded(fcinfo); }); } \
    }                                                                                              \
    static Datum name##_guarded(FunctionCallInfo fcinfo)
