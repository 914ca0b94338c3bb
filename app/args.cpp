#include "app/commands.hpp"

namespace chartflow::cli {

Args parse_args(int argc, char** argv, int first) {
  Args args;
  for (int i = first; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--", 0) == 0) {
      const auto eq = a.find('=');
      std::string name, value;
      if (eq != std::string::npos) {
        name = a.substr(2, eq - 2);
        value = a.substr(eq + 1);
      } else if (i + 1 < argc && std::string(argv[i + 1]).rfind("--", 0) != 0) {
        name = a.substr(2);
        value = argv[++i];
      } else {
        name = a.substr(2);
        value = "true";
      }
      args.options[name] = value;
      args.repeated[name].push_back(value);
    } else {
      args.positional.push_back(a);
    }
  }
  return args;
}

}  // namespace chartflow::cli
