// xg2gd's configuration: the keys, where their values come from (defaults,
// then the --config JSON file, then the environment), and their syntax.
#ifndef XG2G_EXAMPLES_DAEMON_SETTINGS_H_
#define XG2G_EXAMPLES_DAEMON_SETTINGS_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace xg2gd {

enum class Kind { kText, kBool, kInt, kNumber };

struct Key {
  const char* env;   // XG2G_LISTEN
  const char* def;   // default, "" for none
  Kind kind;
  const char* help;
};

// Every key, in the order `xg2gd --help` lists them.
const std::vector<Key>& Keys();

class Settings {
 public:
  Settings();
  const std::string& Get(const std::string& env) const;
  bool Bool(const std::string& env) const;   // after Validate
  int64_t Int(const std::string& env) const;
  double Double(const std::string& env) const;
  void Set(const std::string& env, std::string value, std::string source);
  // Checks each value against its key's kind; the error names key and source.
  bool Validate(std::string* error) const;

 private:
  std::map<std::string, std::string> values_;
  std::map<std::string, std::string> sources_;  // "default", "FILE", "environment"
};

// Defaults, then `config_path` (if not empty), then the environment. An
// unknown key in the file, a value that is not a string, number or boolean,
// or a file that is not a JSON object is an error naming it.
bool LoadSettings(const std::string& config_path, Settings* out, std::string* error);

int LogLevel(const std::string& name);  // debug 0, info 1, warn 2, error 3
bool ReadFile(const std::string& path, std::string* out, std::string* error);
// A store URI with any password replaced by "***".
std::string RedactUri(const std::string& uri);
// Waits until `url` answers 2xx (the daemon's own /healthz) or a deadline.
bool WaitOwnListener(const std::string& url, std::string* error);

}  // namespace xg2gd

#endif  // XG2G_EXAMPLES_DAEMON_SETTINGS_H_
