// Which instruction-set variant of the kernels runs (isa.h): what the CPU
// reports, what this build contains, and MINITL_CPU_ISA / set_cpu_isa.
#include "isa_select.h"

#include <atomic>
#include <cctype>
#include <stdexcept>
#include <string>
#include <vector>

#if defined(_MSC_VER) && (defined(_M_X64) || defined(_M_IX86))
#include <immintrin.h>
#include <intrin.h>
#endif

namespace minitl {

namespace {

// Best first: "auto" takes the first one this CPU can run.
const Kernels* variant(int i) {
    switch (i) {
        case 0: return variant_avx512;
        case 1: return variant_avx2;
        default: return variant_generic;
    }
}
constexpr int kVariants = 3;
constexpr const char* kNames[kVariants] = {"avx512", "avx2", "generic"};

struct FeatureName {
    unsigned bit;
    const char* name;
};
constexpr FeatureName kFeatures[] = {{kAVX2, "avx2"},         {kFMA, "fma"},
                                     {kAVX512F, "avx512f"},   {kAVX512DQ, "avx512dq"},
                                     {kAVX512BW, "avx512bw"}, {kAVX512VL, "avx512vl"}};

unsigned detect() {
    unsigned f = 0;
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
    // libgcc / compiler-rt read CPUID and XGETBV: a feature counts only when
    // the OS also saves its registers (AVX-512 state in XCR0).
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2")) f |= kAVX2;
    if (__builtin_cpu_supports("fma")) f |= kFMA;
    if (__builtin_cpu_supports("avx512f")) f |= kAVX512F;
    if (__builtin_cpu_supports("avx512dq")) f |= kAVX512DQ;
    if (__builtin_cpu_supports("avx512bw")) f |= kAVX512BW;
    if (__builtin_cpu_supports("avx512vl")) f |= kAVX512VL;
#elif defined(_MSC_VER) && (defined(_M_X64) || defined(_M_IX86))
    int r[4];
    __cpuid(r, 0);
    const int max_leaf = r[0];
    __cpuid(r, 1);
    const bool osxsave = (r[2] >> 27) & 1, avx = (r[2] >> 28) & 1, fma = (r[2] >> 12) & 1;
    if (!(osxsave && avx)) return 0;
    const unsigned long long xcr0 = _xgetbv(0);
    if ((xcr0 & 0x6) != 0x6) return 0;  // XMM and YMM state
    if (fma) f |= kFMA;
    if (max_leaf >= 7) {
        __cpuidex(r, 7, 0);
        if ((r[1] >> 5) & 1) f |= kAVX2;
        if ((xcr0 & 0xE0) == 0xE0) {  // opmask, ZMM0-15 upper halves, ZMM16-31
            if ((r[1] >> 16) & 1) f |= kAVX512F;
            if ((r[1] >> 17) & 1) f |= kAVX512DQ;
            if ((r[1] >> 30) & 1) f |= kAVX512BW;
            if ((r[1] >> 31) & 1) f |= kAVX512VL;
        }
    }
#endif
    return f;
}

std::string feature_list(unsigned f) {
    std::string s;
    for (const auto& n : kFeatures)
        if (f & n.bit) s += (s.empty() ? "" : " ") + std::string(n.name);
    return s.empty() ? "none of avx2/fma/avx512" : s;
}

int index_of(const std::string& name) {
    for (int i = 0; i < kVariants; ++i)
        if (name == kNames[i]) return i;
    return -1;
}

bool runnable(const Kernels* k) { return k && (k->needs & ~cpu_features()) == 0; }

std::string join(const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
    return s.empty() ? "none" : s;
}

std::atomic<const Kernels*> g_active{nullptr};
std::string g_choice = "auto";  // written under the GIL only (module init, set_cpu_isa)

const Kernels* best() {
    for (int i = 0; i < kVariants; ++i)
        if (runnable(variant(i))) return variant(i);
    return variant_generic;  // its needs are the baseline's: always runnable
}

// "  AVX2 " -> "avx2": the names are case- and space-insensitive.
std::string normalise(std::string name) {
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    while (!name.empty() && std::isspace(static_cast<unsigned char>(name.back()))) name.pop_back();
    while (!name.empty() && std::isspace(static_cast<unsigned char>(name.front()))) name.erase(0, 1);
    return name;
}

// The variant `name` (normalised) names, or an exception saying why it
// cannot run here; `what` says who asked, for the message.
const Kernels* resolve(const std::string& name, const std::string& what) {
    if (name == "auto" || name.empty()) return best();
    const int i = index_of(name);
    if (i < 0)
        throw std::invalid_argument(what + ": unknown instruction set; choose one of auto, avx512, "
                                           "avx2, generic");
    const Kernels* k = variant(i);
    if (!k)
        throw std::runtime_error(what + ": this build of minitl._C has no " + name +
                                 " variant (not an x86-64 build, or the compiler lacked the "
                                 "flags); it has: " + join(isas_compiled()));
    if (!runnable(k))
        throw std::runtime_error(what + ": this CPU lacks " + feature_list(k->needs & ~cpu_features()) +
                                 ", which the " + name + " variant needs; the CPU reports " +
                                 feature_list(cpu_features()) + ", so it can run: " +
                                 join(isas_supported()));
    return k;
}

}  // namespace

unsigned cpu_features() {
    static const unsigned f = detect();
    return f;
}

std::string cpu_feature_names() { return feature_list(cpu_features()); }

std::vector<std::string> isas_compiled() {
    std::vector<std::string> v;
    for (int i = 0; i < kVariants; ++i)
        if (variant(i)) v.push_back(kNames[i]);
    return v;
}

std::vector<std::string> isas_supported() {
    std::vector<std::string> v;
    for (int i = 0; i < kVariants; ++i)
        if (runnable(variant(i))) v.push_back(kNames[i]);
    return v;
}

const Kernels& active_kernels() {
    const Kernels* k = g_active.load(std::memory_order_acquire);
    if (!k) {  // not initialised yet (init_isa_from_env runs when _C loads)
        k = best();
        g_active.store(k, std::memory_order_release);
    }
    return *k;
}

std::string init_isa_from_env(const char* value) {
    const std::string name = normalise(value ? value : "");
    std::string warning;
    const Kernels* k;
    try {
        k = resolve(name, "MINITL_CPU_ISA=" + name);
        g_choice = name.empty() || name == "auto" ? "auto" : "MINITL_CPU_ISA=" + name;
    } catch (const std::exception& e) {
        k = best();
        warning = std::string(e.what()) + "; using " + k->name + " instead";
        g_choice = "auto, MINITL_CPU_ISA=" + name + " unusable";
    }
    g_active.store(k, std::memory_order_release);
    return warning;
}

std::string set_cpu_isa(const std::string& requested) {
    const std::string name = normalise(requested);
    const Kernels* k = resolve(name, "set_cpu_isa('" + requested + "')");
    g_active.store(k, std::memory_order_release);
    g_choice = name == "auto" || name.empty() ? "auto" : "set_cpu_isa('" + name + "')";
    return k->name;
}

const std::string& isa_choice() { return g_choice; }

}  // namespace minitl
