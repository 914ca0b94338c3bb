#include "core/cron.hpp"

#include <fmt/format.h>

#include <array>
#include <cctype>
#include <map>
#include <sstream>
#include <vector>

namespace chartflow::core {
namespace {

using std::chrono::days;
using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;

struct FieldSpec {
  const char* name;
  int min, max;
  const std::array<const char*, 12>* names;  // names[i] stands for min + i
};

const std::array<const char*, 12> kMonthNames = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                                 "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
const std::array<const char*, 12> kDayNames = {"SUN", "MON",   "TUE",   "WED",   "THU",   "FRI",
                                               "SAT", nullptr, nullptr, nullptr, nullptr, nullptr};

const FieldSpec kSeconds{"second", 0, 59, nullptr};
const FieldSpec kMinutes{"minute", 0, 59, nullptr};
const FieldSpec kHours{"hour", 0, 23, nullptr};
const FieldSpec kDays{"day of month", 1, 31, nullptr};
const FieldSpec kMonths{"month", 1, 12, &kMonthNames};
const FieldSpec kWeekdays{"day of week", 0, 7, &kDayNames};  // 7 = Sunday as well

const std::map<std::string, std::string> kMacros = {
    {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
    {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
    {"@hourly", "0 * * * *"}};

std::optional<int> parse_value(const std::string& s, const FieldSpec& f) {
  if (s.empty()) return std::nullopt;
  if (std::isdigit(static_cast<unsigned char>(s[0]))) {
    if (s.size() > 2) return std::nullopt;
    for (char c : s)
      if (!std::isdigit(static_cast<unsigned char>(c))) return std::nullopt;
    const int v = std::stoi(s);
    if (v < f.min || v > f.max) return std::nullopt;
    return v;
  }
  if (f.names == nullptr) return std::nullopt;
  std::string upper;
  for (char c : s) upper += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  for (std::size_t i = 0; i < f.names->size(); ++i)
    if ((*f.names)[i] != nullptr && upper == (*f.names)[i]) return f.min + static_cast<int>(i);
  return std::nullopt;
}

// Parses one field into bits [min..max]; returns an error message or "".
template <std::size_t N>
std::string parse_field(const std::string& text, const FieldSpec& f, std::bitset<N>& bits,
                        bool* restricted) {
  const std::string where = fmt::format("{} field '{}': ", f.name, text);
  *restricted = text != "*" && text != "?";
  std::stringstream parts(text);
  std::string part;
  while (std::getline(parts, part, ',')) {
    int step = 1;
    const bool stepped = part.find('/') != std::string::npos;
    if (auto slash = part.find('/'); slash != std::string::npos) {
      const std::string st = part.substr(slash + 1);
      if (st.empty() || st.size() > 2 || st.find_first_not_of("0123456789") != std::string::npos ||
          std::stoi(st) == 0 || std::stoi(st) > f.max)
        return where + fmt::format("step must be a number from 1 to {}", f.max);
      step = std::stoi(st);
      part = part.substr(0, slash);
    }
    int lo = f.min;
    int hi = f.max;
    if (part == "*" || part == "?") {
      if (f.max == 7) hi = 6;  // '*' in day of week: 0..6, 7 would only repeat Sunday
    } else if (auto dash = part.find('-'); dash != std::string::npos) {
      auto a = parse_value(part.substr(0, dash), f);
      auto b = parse_value(part.substr(dash + 1), f);
      if (!a || !b)
        return where +
               fmt::format("'{}' is not a range of values from {} to {}", part, f.min, f.max);
      if (*a > *b) return where + fmt::format("range '{}' runs backwards", part);
      lo = *a;
      hi = *b;
    } else {
      auto v = parse_value(part, f);
      if (!v) return where + fmt::format("'{}' is not a value from {} to {}", part, f.min, f.max);
      lo = *v;
      // "a/n" means from a to the end in steps of n.
      hi = stepped ? f.max : *v;
    }
    for (int v = lo; v <= hi; v += step)
      bits.set(static_cast<std::size_t>(v % static_cast<int>(N)));
  }
  if (text.empty() || text.back() == ',' || text.front() == ',')
    return where + "empty list element";
  return "";
}

}  // namespace

std::optional<Cron> Cron::parse(const std::string& text, std::string* error) {
  std::string expanded = text;
  if (auto m = kMacros.find(expanded); m != kMacros.end()) expanded = m->second;
  std::vector<std::string> fields;
  std::stringstream ss(expanded);
  for (std::string f; ss >> f;) fields.push_back(f);
  if (fields.size() != 5 && fields.size() != 6) {
    *error = fmt::format(
        "schedule '{}' must have 5 fields (minute hour day-of-month month day-of-week) or 6 "
        "(with seconds first), not {}",
        text, fields.size());
    return std::nullopt;
  }
  Cron c;
  c.has_seconds_ = fields.size() == 6;
  std::size_t i = 0;
  bool unused = false;
  std::string problem;
  if (c.has_seconds_) {
    problem = parse_field(fields[i++], kSeconds, c.seconds_, &unused);
  } else {
    c.seconds_.set(0);
  }
  std::bitset<8> weekdays;
  if (problem.empty()) problem = parse_field(fields[i++], kMinutes, c.minutes_, &unused);
  if (problem.empty()) problem = parse_field(fields[i++], kHours, c.hours_, &unused);
  if (problem.empty()) problem = parse_field(fields[i++], kDays, c.days_, &c.days_restricted_);
  if (problem.empty()) problem = parse_field(fields[i++], kMonths, c.months_, &unused);
  if (problem.empty())
    problem = parse_field(fields[i++], kWeekdays, weekdays, &c.weekdays_restricted_);
  if (!problem.empty()) {
    *error = fmt::format("schedule '{}': {}", text, problem);
    return std::nullopt;
  }
  for (std::size_t d = 0; d < 7; ++d) c.weekdays_[d] = weekdays[d] || (d == 0 && weekdays[7]);
  return c;
}

bool Cron::day_matches(std::chrono::sys_days d) const {
  const std::chrono::year_month_day ymd(d);
  const bool dom = days_[static_cast<unsigned>(ymd.day())];
  const bool dow = weekdays_[std::chrono::weekday(d).c_encoding()];
  if (days_restricted_ && weekdays_restricted_) return dom || dow;
  return dom && dow;
}

bool Cron::matches(CivilSeconds t) const {
  const auto day = std::chrono::floor<days>(t);
  const std::chrono::year_month_day ymd(day);
  const std::chrono::hh_mm_ss hms(t - day);
  return months_[static_cast<unsigned>(ymd.month())] && day_matches(day) &&
         hours_[static_cast<std::size_t>(hms.hours().count())] &&
         minutes_[static_cast<std::size_t>(hms.minutes().count())] &&
         seconds_[static_cast<std::size_t>(hms.seconds().count())];
}

std::optional<CivilSeconds> Cron::next_after(CivilSeconds t) const {
  // Field by field from the largest: a mismatch jumps to the start of the next unit, so the
  // search takes at most a few thousand steps even for rare dates.
  CivilSeconds c = t + seconds(1);
  const CivilSeconds limit = t + days(5 * 366);
  while (c <= limit) {
    const auto day = std::chrono::floor<days>(c);
    const std::chrono::year_month_day ymd(day);
    if (!months_[static_cast<unsigned>(ymd.month())]) {
      const auto first_next =
          std::chrono::year_month_day(ymd.year() / ymd.month() / 1) + std::chrono::months(1);
      c = std::chrono::sys_days(first_next);
      continue;
    }
    if (!day_matches(day)) {
      c = day + days(1);
      continue;
    }
    const std::chrono::hh_mm_ss hms(c - day);
    if (!hours_[static_cast<std::size_t>(hms.hours().count())]) {
      c = std::chrono::floor<hours>(c) + hours(1);
      continue;
    }
    if (!minutes_[static_cast<std::size_t>(hms.minutes().count())]) {
      c = std::chrono::floor<minutes>(c) + minutes(1);
      continue;
    }
    if (!seconds_[static_cast<std::size_t>(hms.seconds().count())]) {
      c += seconds(1);
      continue;
    }
    return c;
  }
  return std::nullopt;
}

}  // namespace chartflow::core
