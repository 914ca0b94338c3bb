#include "handlers/discharge/release.hpp"

#include <fmt/format.h>

#include "handlers/fhir/fhir_json.hpp"

namespace chartflow::handlers::discharge {
namespace {

// UTF-8 aware width, so names with accents still line up in the bill.
std::size_t display_width(const std::string& s) {
  std::size_t width = 0;
  for (unsigned char c : s) {
    if ((c & 0xC0) != 0x80) ++width;
  }
  return width;
}

// The first `n` characters of a UTF-8 string.
std::string truncate(const std::string& s, std::size_t n) {
  std::size_t chars = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80 && chars++ == n) return s.substr(0, i);
  }
  return s;
}

// `s` cut (with an ellipsis) or padded to exactly `width` characters.
std::string fit(const std::string& s, std::size_t width) {
  std::string out = display_width(s) <= width ? s
                    : width > 3               ? truncate(s, width - 3) + "..."
                                              : truncate(s, width);
  for (std::size_t w = display_width(out); w < width; ++w) out += ' ';
  return out;
}

std::string format_quantity(double q) {
  if (q == static_cast<double>(static_cast<std::int64_t>(q))) {
    return fmt::format("{}", static_cast<std::int64_t>(q));
  }
  return fmt::format("{:.3g}", q);
}

}  // namespace

bool is_released_encounter(const Json& encounter) {
  if (fhir::string_member(encounter, "status") != "finished") return false;
  const Json& hospitalization = fhir::object_member(encounter, "hospitalization");
  const Json* disposition = fhir::member(hospitalization, "dischargeDisposition");
  return disposition != nullptr && fhir::has_value(*disposition);
}

std::vector<const Json*> released_encounters(const fhir::BundleIndex& index) {
  std::vector<const Json*> out;
  for (const Json* e : index.of_type("Encounter")) {
    if (is_released_encounter(*e)) out.push_back(e);
  }
  return out;
}

bool is_released(const fhir::BundleIndex& index) {
  for (const Json* e : index.of_type("Encounter")) {
    if (is_released_encounter(*e)) return true;
  }
  return false;
}

std::int64_t total_cents(const std::vector<LedgerLine>& lines) {
  std::int64_t sum = 0;
  for (const auto& l : lines) sum += l.amount_cents;
  return sum;
}

Json build_invoice(const BillInput& input) {
  const std::int64_t total = total_cents(input.lines);
  auto money = [&input](std::int64_t cents) {
    return Json{{"value", static_cast<double>(cents) / 100.0}, {"currency", input.currency}};
  };
  Json line_items = Json::array();
  int sequence = 0;
  for (const auto& line : input.lines) {
    Json coding = {{"code", line.code}};
    if (!line.code_system.empty()) coding["system"] = line.code_system;
    if (!line.description.empty()) coding["display"] = line.description;
    line_items.push_back(Json{
        {"sequence", ++sequence},
        {"chargeItemCodeableConcept",
         {{"coding", Json::array({coding})}, {"text", line.description}}},
        {"priceComponent",
         Json::array({Json{
             {"type", "base"}, {"factor", line.quantity}, {"amount", money(line.amount_cents)}}})},
        {"extension", Json::array({Json{{"url", "urn:chartflow:ledger-source"},
                                        {"valueString", line.source_ref}}})}});
  }
  Json invoice = {
      {"resourceType", "Invoice"},
      {"identifier",
       Json::array({Json{{"system", "urn:chartflow:invoice"}, {"value", input.chart_id}}})},
      {"status", "issued"},
      {"date", input.issued_at},
      {"lineItem", std::move(line_items)},
      {"totalNet", money(total)},
      {"totalGross", money(total)}};
  if (!input.patient_ref.empty()) invoice["subject"] = {{"reference", input.patient_ref}};
  return invoice;
}

std::string render_bill_text(const BillInput& input) {
  constexpr std::size_t kDescriptionWidth = 48;
  std::string out;
  out += "PATIENT BILL\n";
  out += "============\n\n";
  out += fmt::format("Chart:    {}\n", input.chart_id);
  if (!input.patient_name.empty()) out += fmt::format("Patient:  {}\n", input.patient_name);
  out += fmt::format("Issued:   {}\n", input.issued_at);
  if (!input.payors.empty()) {
    std::string joined;
    for (const auto& p : input.payors) joined += (joined.empty() ? "" : ", ") + p;
    out += fmt::format("Insurer:  {} (informed of this bill)\n", joined);
  }
  out += "\n";
  out += fmt::format("{:>4}  {}  {:>8}  {:>14}\n", "#", fit("Description", kDescriptionWidth),
                     "Qty", "Amount");
  out += std::string(4 + 2 + kDescriptionWidth + 2 + 8 + 2 + 14, '-') + "\n";
  int n = 0;
  for (const auto& line : input.lines) {
    std::string description = line.description.empty() ? line.code : line.description;
    std::string quantity = format_quantity(line.quantity);
    if (!line.unit.empty()) quantity += " " + line.unit;
    out += fmt::format("{:>4}  {}  {:>8}  {:>14}\n", ++n, fit(description, kDescriptionWidth),
                       quantity,
                       fmt::format("{} {}", fhir::format_cents(line.amount_cents), line.currency));
  }
  if (input.lines.empty()) out += "      (no charges)\n";
  out += std::string(4 + 2 + kDescriptionWidth + 2 + 8 + 2 + 14, '-') + "\n";
  out += fmt::format(
      "{:>4}  {}  {:>8}  {:>14}\n", "", fit("Total", kDescriptionWidth), "",
      fmt::format("{} {}", fhir::format_cents(total_cents(input.lines)), input.currency));
  return out;
}

}  // namespace chartflow::handlers::discharge
