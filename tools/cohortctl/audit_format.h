// Renders a ListAuditResponse as `cohortctl audit` prints it: one block per
// entry, then the result of the server's hash-chain verification.
#ifndef COHORTD_TOOLS_COHORTCTL_AUDIT_FORMAT_H_
#define COHORTD_TOOLS_COHORTCTL_AUDIT_FORMAT_H_

#include <string>

#include "cohortd/v1/cohortd.pb.h"

namespace cohortd::cohortctl {

// Per entry: "#SEQ TIME principal=P dataset=D release=R cost ε=.. δ=.. ρ=..
// hash=FIRST12HEX", then the canonical request on an indented line. Ends
// with "chain: valid ..." or "chain: INVALID: <first broken link>".
std::string FormatAudit(const cohortd::v1::ListAuditResponse& response);

}  // namespace cohortd::cohortctl

#endif  // COHORTD_TOOLS_COHORTCTL_AUDIT_FORMAT_H_
