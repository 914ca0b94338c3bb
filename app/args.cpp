#include "app/commands.hpp"

namespace chartflow::cli {

Args parse_args(int argc, char** argv, int first) {
  Args args;
  for (int i = first; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--", 0) == 0) {
      const auto eq = a.find('=');
      if (eq != std::string::npos) {
        args.options[a.substr(2, eq - 2)] = a.substr(eq + 1);
      } else if (i + 1 < argc && std::string(argv[i + 1]).rfind("--", 0) != 0) {
        args.options[a.substr(2)] = argv[++i];
      } else {
        args.options[a.substr(2)] = "true";
      }
    } else {
      args.positional.push_back(a);
    }
  }
  return args;
}

}  // namespace chartflow::cli
