// Choosing the kernel variant (isa.cpp): for the bindings, not the kernels.
#pragma once

#include <string>
#include <vector>

#include "isa.h"

namespace minitl {

unsigned cpu_features();                // CpuFeature bits the CPU and OS support
std::string cpu_feature_names();        // the same, as "avx2 fma ..."
std::vector<std::string> isas_compiled();   // variants in this build, best first
std::vector<std::string> isas_supported();  // ... that this CPU can run, best first

// Select the variant MINITL_CPU_ISA names (null or "auto": the best one).
// A name that is unknown or that the CPU cannot run selects the best one
// and returns a warning saying why; "" when the request was honoured.
std::string init_isa_from_env(const char* value);

// Select a variant by name ("auto" = best); returns the name now active.
// Throws std::invalid_argument for an unknown name and std::runtime_error
// for a variant this build lacks or this CPU cannot run, naming what it has.
std::string set_cpu_isa(const std::string& name);

// How the active variant was chosen: "auto", "MINITL_CPU_ISA=avx2", ...
const std::string& isa_choice();

}  // namespace minitl
