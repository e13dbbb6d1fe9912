// Parsing a tool's command line with the shared exit codes: help exits 0, any usage error exits 2.
#pragma once
#include <CLI/CLI.hpp>
#include <optional>

namespace fkv::tools {

// Parses argv into app. Returns nullopt to go on, or the exit code to return now (after CLI11 has printed
// the help or the error).
std::optional<int> parse_command_line(CLI::App& app, int argc, char** argv);

}  // namespace fkv::tools
