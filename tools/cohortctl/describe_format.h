// Renders the public, config-derived descriptions the analyst commands
// print: a DatasetDescription (`cohortctl describe`) and a Budget
// (`cohortctl budget`).
#ifndef COHORTD_TOOLS_COHORTCTL_DESCRIBE_FORMAT_H_
#define COHORTD_TOOLS_COHORTCTL_DESCRIBE_FORMAT_H_

#include <string>

#include "cohortd/v1/cohortd.pb.h"

namespace cohortd::cohortctl {

// The dataset's name and description, its dimensions (each with its
// domain, "open domain (max N bytes)", or "derived"), its measures (bounds
// and granularity) and its privacy parameters.
std::string FormatDescription(
    const cohortd::v1::DatasetDescription& description);

// A table of total, spent and remaining, each as ε, δ and ρ, under a line
// naming the principal and dataset.
std::string FormatBudget(const cohortd::v1::Budget& budget);

}  // namespace cohortd::cohortctl

#endif  // COHORTD_TOOLS_COHORTCTL_DESCRIBE_FORMAT_H_
