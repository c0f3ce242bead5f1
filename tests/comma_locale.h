#pragma once
// Runs a test under a locale whose decimal mark is ',' (as the viewer runs
// under the user's locale, which Qt sets), and restores the previous one.
// scripts/install-deps.sh generates de_DE.UTF-8; where no such locale is
// installed, active() is false and the test skips with kMissingCommaLocale.
#include <clocale>
#include <string>

namespace memfront::test_support {

inline constexpr const char* kMissingCommaLocale =
    "no comma-decimal locale is installed (scripts/install-deps.sh generates de_DE.UTF-8)";

class CommaDecimalLocale {
 public:
  CommaDecimalLocale() : saved_(std::setlocale(LC_ALL, nullptr)) {
    for (const char* name : {"de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "fr_FR.utf8", "de_DE", "fr_FR"}) {
      if (std::setlocale(LC_ALL, name) && std::localeconv()->decimal_point[0] == ',') {
        active_ = true;
        return;
      }
    }
    std::setlocale(LC_ALL, saved_.c_str());
  }
  CommaDecimalLocale(const CommaDecimalLocale&) = delete;
  CommaDecimalLocale& operator=(const CommaDecimalLocale&) = delete;
  ~CommaDecimalLocale() { std::setlocale(LC_ALL, saved_.c_str()); }

  bool active() const { return active_; }

 private:
  std::string saved_;
  bool active_ = false;
};

}  // namespace memfront::test_support
