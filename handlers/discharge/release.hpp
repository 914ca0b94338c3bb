// Discharge: whether a chart's patient was released, and the closing documents built from the
// chart's ledger (a FHIR Invoice and the readable bill). Pure functions; any thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/handler.hpp"
#include "handlers/fhir/bundle_index.hpp"

namespace chartflow::handlers::discharge {

// An Encounter that is finished and carries hospitalization.dischargeDisposition.
bool is_released_encounter(const Json& encounter);
std::vector<const Json*> released_encounters(const fhir::BundleIndex& index);
bool is_released(const fhir::BundleIndex& index);

// One ledger row as the closing documents need it.
struct LedgerLine {
  std::string source_ref;
  std::string code;
  std::string code_system;
  std::string description;
  double quantity = 1;
  std::string unit;
  std::int64_t amount_cents = 0;
  std::string currency;
  std::string payor;
};

struct BillInput {
  std::string chart_id;
  std::string patient_ref;   // "Patient/<id>"
  std::string patient_name;  // for the patient's own bill only
  std::string issued_at;     // ISO 8601
  std::string currency;
  std::vector<LedgerLine> lines;
  std::vector<std::string> payors;  // insurers informed
};

std::int64_t total_cents(const std::vector<LedgerLine>& lines);
// A FHIR R4 Invoice (status issued) with one lineItem per ledger line.
Json build_invoice(const BillInput& input);
// The bill as plain text, for a person to read.
std::string render_bill_text(const BillInput& input);

}  // namespace chartflow::handlers::discharge
