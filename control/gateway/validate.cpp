// validate.cpp: implementation of the input checks declared in validate.h.
//
// The ISO 8601 parser is a small hand-written scanner (no locale, no strptime) that accepts exactly the
// documented subset and checks every field's range, including the day against the month and leap
// years, so that the database never sees a timestamp the gateway considered valid but it rejects.
#include "validate.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <limits>

namespace pgfleet::gateway {

namespace {

// Reads exactly n decimal digits at text[pos], advancing pos; nullopt if they are not all digits.
std::optional<int> read_digits(const std::string &text, size_t &pos, size_t n) {
  if (pos + n > text.size()) return std::nullopt;
  int v = 0;
  for (size_t i = 0; i < n; ++i) {
    char c = text[pos + i];
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  pos += n;
  return v;
}

// True if text[pos] exists and equals c; advances pos when it does.
bool accept(const std::string &text, size_t &pos, char c) {
  if (pos < text.size() && text[pos] == c) {
    ++pos;
    return true;
  }
  return false;
}

// Days in a month of the proleptic Gregorian calendar.
int days_in_month(int year, int month) {
  static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  return month == 2 && leap ? 29 : days[month - 1];
}

// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm; no time zone involved).
int64_t days_from_civil(int64_t y, int m, int d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

}  // namespace

// Digits only, overflow-checked.
std::optional<int64_t> parse_instance_id(const std::string &text) {
  if (text.empty() || text.size() > 19) return std::nullopt;
  int64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    int digit = c - '0';
    if (v > (std::numeric_limits<int64_t>::max() - digit) / 10) return std::nullopt;
    v = v * 10 + digit;
  }
  return v;
}

// Splits on ',' and checks every part; the literal is built from the parsed numbers only.
std::optional<std::string> parse_id_list(const std::string &text, size_t max_count) {
  std::string out = "{";
  size_t count = 0, pos = 0;
  if (text.empty()) return std::nullopt;
  for (;;) {
    size_t comma = text.find(',', pos);
    auto id = parse_instance_id(text.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos));
    if (!id || ++count > max_count) return std::nullopt;
    if (count > 1) out += ',';
    out += std::to_string(*id);
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return out + "}";
}

// Length and character-class check of a metric name.
bool is_valid_metric(const std::string &text) {
  if (text.empty() || text.size() > 128) return false;
  char first = text[0];
  if (!((first >= 'a' && first <= 'z') || (first >= 'A' && first <= 'Z'))) return false;
  for (char c : text) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
              c == '.' || c == '-';
    if (!ok) return false;
  }
  return true;
}

// Scans date, time, optional fraction and the mandatory zone, then range-checks every field.
std::optional<double> parse_iso8601(const std::string &text) {
  if (text.size() > 64) return std::nullopt;
  size_t pos = 0;
  auto year = read_digits(text, pos, 4);
  if (!year || !accept(text, pos, '-')) return std::nullopt;
  auto month = read_digits(text, pos, 2);
  if (!month || !accept(text, pos, '-')) return std::nullopt;
  auto day = read_digits(text, pos, 2);
  if (!day || !(accept(text, pos, 'T') || accept(text, pos, 't') || accept(text, pos, ' ')))
    return std::nullopt;
  auto hour = read_digits(text, pos, 2);
  if (!hour || !accept(text, pos, ':')) return std::nullopt;
  auto minute = read_digits(text, pos, 2);
  if (!minute) return std::nullopt;
  int second = 0;
  double fraction = 0;
  if (accept(text, pos, ':')) {
    auto s = read_digits(text, pos, 2);
    if (!s) return std::nullopt;
    second = *s;
    if (accept(text, pos, '.')) {
      double scale = 0.1;
      size_t digits = 0;
      while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
        if (digits < 9) fraction += (text[pos] - '0') * scale;  // beyond ns precision is ignored
        scale /= 10;
        ++digits;
        ++pos;
      }
      if (digits == 0) return std::nullopt;
    }
  }
  int offset_seconds = 0;
  if (accept(text, pos, 'Z') || accept(text, pos, 'z')) {
    // UTC
  } else if (pos < text.size() && (text[pos] == '+' || text[pos] == '-')) {
    int sign = text[pos] == '-' ? -1 : 1;
    ++pos;
    auto oh = read_digits(text, pos, 2);
    if (!oh) return std::nullopt;
    int om = 0;
    if (pos < text.size()) {
      accept(text, pos, ':');
      auto m = read_digits(text, pos, 2);
      if (!m) return std::nullopt;
      om = *m;
    }
    if (*oh > 15 || om > 59) return std::nullopt;
    offset_seconds = sign * (*oh * 3600 + om * 60);
  } else {
    return std::nullopt;  // a zone is required: local time would be ambiguous
  }
  if (pos != text.size()) return std::nullopt;
  if (*year < 1970 || *month < 1 || *month > 12 || *day < 1 || *day > days_in_month(*year, *month) ||
      *hour > 23 || *minute > 59 || second > 59)
    return std::nullopt;
  int64_t secs = days_from_civil(*year, *month, *day) * 86400 + *hour * 3600 + *minute * 60 + second;
  return static_cast<double>(secs - offset_seconds) + fraction;
}

// UTC with millisecond precision (rounded).
std::string format_iso8601(double unix_seconds) {
  double whole = std::floor(unix_seconds);
  int millis = static_cast<int>(std::lround((unix_seconds - whole) * 1000));
  if (millis == 1000) {
    whole += 1;
    millis = 0;
  }
  time_t t = static_cast<time_t>(whole);
  struct tm tm {};
  gmtime_r(&t, &tm);
  char buf[96];
  snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
           tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
  return buf;
}

// Accepts exactly 1/0/true/false.
std::optional<bool> parse_flag(const std::string &text) {
  if (text == "1" || text == "true") return true;
  if (text == "0" || text == "false") return false;
  return std::nullopt;
}

// Splits on '/', drops empty segments, rejects dot segments and control characters.
std::optional<std::string> static_relative_path(const std::string &url_path) {
  if (url_path.empty() || url_path[0] != '/' || url_path.size() > 1024) return std::nullopt;
  for (unsigned char c : url_path)
    if (c < 0x20 || c == 0x7f || c == '\\') return std::nullopt;
  std::string rel;
  size_t start = 1;
  while (start <= url_path.size()) {
    size_t end = url_path.find('/', start);
    if (end == std::string::npos) end = url_path.size();
    std::string segment = url_path.substr(start, end - start);
    if (!segment.empty()) {
      if (segment[0] == '.') return std::nullopt;  // ".", "..", and hidden files
      if (!rel.empty()) rel += '/';
      rel += segment;
    }
    start = end + 1;
  }
  if (url_path.back() == '/') rel += rel.empty() ? "index.html" : "/index.html";
  return rel;
}

// Byte-wise replacement; never produces a newline.
std::string sanitize_for_log(const std::string &text, size_t max_len) {
  std::string out;
  out.reserve(std::min(text.size(), max_len));
  for (unsigned char c : text) {
    if (out.size() >= max_len) {
      out += "...";
      break;
    }
    out += (c < 0x20 || c >= 0x7f) ? '?' : static_cast<char>(c);
  }
  return out;
}

}  // namespace pgfleet::gateway
