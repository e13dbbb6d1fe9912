#include "common/cli_parse.h"

#include "common/cli_options.h"

namespace fkv::tools {

std::optional<int> parse_command_line(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // CLI11's own codes (106 for a failed check, ...) would leak into scripts; the tools promise 2.
    return app.exit(e) == 0 ? kExitOk : kExitBadInput;
  }
  return std::nullopt;
}

}  // namespace fkv::tools
