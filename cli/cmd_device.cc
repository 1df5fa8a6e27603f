// fleetca device ...: DeviceRegistryService.

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <fstream>
#include <iostream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "cli/cli.h"
#include "cli/import.h"
#include "cli/output.h"
#include "fleetca/v1/device_registry.grpc.pb.h"

namespace fleetca::cli {

namespace {

using Registry = v1::DeviceRegistryService;

const std::vector<Column> kDeviceColumns = {
    {"COMM-ID", "comm_id"}, {"STATUS", "status"},         {"DISPLAY-NAME", "display_name"},
    {"GROUPS", "groups"},   {"ATTRIBUTES", "attributes"}, {"UPDATED", "update_time"},
};

void ShowDevice(Cli& cli, const v1::Device& device) {
  if (cli.Format() == OutputFormat::kTable) {
    std::cout << Describe(device);
  } else {
    Show(cli, device);
  }
}

// "k=v" pairs into a map; a usage error naming the flag otherwise.
void ParseAttributes(const std::vector<std::string>& pairs, const std::string& flag,
                     google::protobuf::Map<std::string, std::string>* out) {
  for (const std::string& p : pairs) {
    const size_t eq = p.find('=');
    if (eq == std::string::npos || eq == 0) {
      throw UsageError(flag + ": '" + p + "' is not KEY=VALUE");
    }
    (*out)[p.substr(0, eq)] = p.substr(eq + 1);
  }
}

struct DeviceFields {
  std::string display_name;
  std::vector<std::string> groups;
  std::vector<std::string> attributes;
  std::string status;
  std::string etag;
  std::string reason;
};

volatile std::sig_atomic_t g_stop = 0;
extern "C" void OnSigint(int) {
  if (g_stop != 0) {  // a second Ctrl-C: stop now
    std::signal(SIGINT, SIG_DFL);
    std::raise(SIGINT);
  }
  g_stop = 1;
}

void Progress(const ImportSummary& s, uint64_t bytes, uint64_t total_bytes,
              std::chrono::steady_clock::time_point start) {
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double rate = secs > 0 ? static_cast<double>(s.rows) / secs : 0;
  std::string line;
  if (total_bytes > 0) {
    const double frac =
        std::min(1.0, static_cast<double>(bytes) / static_cast<double>(total_bytes));
    const int width = 30;
    const int filled = static_cast<int>(frac * width);
    line = absl::StrFormat("\r[%s%s] %3d%% ", std::string(filled, '#'),
                           std::string(width - filled, '.'), static_cast<int>(frac * 100));
  } else {
    line = "\r";
  }
  absl::StrAppendFormat(&line,
                        "%d rows, %d registered, %d exists, %d failed, %d skipped, %.0f rows/s ",
                        s.rows, s.registered, s.exists, s.failed, s.skipped, rate);
  std::cerr << line << std::flush;
}

void Import(Cli& cli, const std::string& input, const std::string& format_flag,
            std::string results_path, int batch_size, bool no_progress) {
  if (batch_size < 1 || batch_size > 10000) {
    throw UsageError("--batch-size: 1 to 10000 (the server's limit per batch)");
  }
  const ImportFormat format = ImportFormatFor(format_flag, input == "-" ? "" : input);
  if (results_path.empty()) {
    if (input == "-") throw UsageError("reading standard input: give --results FILE");
    results_path = input + ".results.jsonl";
  }
  std::ifstream file;
  std::istream* in = &std::cin;
  uint64_t total_bytes = 0;
  if (input != "-") {
    file.open(input, std::ios::binary);
    if (!file) throw CliError(kExitError, input + ": cannot open: " + std::strerror(errno));
    file.seekg(0, std::ios::end);
    total_bytes = static_cast<uint64_t>(std::max<std::streamoff>(0, file.tellg()));
    file.seekg(0, std::ios::beg);
    in = &file;
  }
  std::unique_ptr<RowReader> reader =
      format == ImportFormat::kCsv ? NewCsvReader(*in) : NewJsonlReader(*in);

  DoneSet done;
  bool needs_newline = false;
  {
    std::ifstream previous(results_path, std::ios::binary);
    if (previous) {
      const int64_t n = done.Load(previous);
      std::ifstream tail(results_path, std::ios::binary | std::ios::ate);
      const std::streamoff size = tail.tellg();
      if (size > 0) {
        tail.seekg(size - 1);
        char last = '\n';
        tail.get(last);
        needs_newline = last != '\n';
      }
      if (n > 0) {
        std::cerr << "fleetca: resuming: " << results_path << " records " << done.size()
                  << " rows as done; they are skipped\n";
      }
    }
  }
  std::ofstream results(results_path, std::ios::binary | std::ios::app);
  if (!results) {
    throw CliError(kExitError, results_path + ": cannot open for writing: " + std::strerror(errno));
  }
  if (needs_newline) results << '\n';  // a line torn by an interruption stays on its own

  auto stub = Registry::NewStub(cli.Channel());
  ImportOptions options;
  options.batch_size = batch_size;
  options.backoff = [](int attempt) {
    std::this_thread::sleep_for(std::chrono::seconds(1 << std::min(attempt - 1, 4)));
  };
  const bool tty = !no_progress && isatty(STDERR_FILENO) == 1;
  const auto start = std::chrono::steady_clock::now();
  if (tty) {
    options.progress = [&](const ImportSummary& s, uint64_t bytes) {
      Progress(s, bytes, total_bytes, start);
    };
  }
  g_stop = 0;
  options.stop = &g_stop;
  auto previous_handler = std::signal(SIGINT, OnSigint);
  const BatchFn send = [&](const v1::BatchRegisterDevicesRequest& request,
                           v1::BatchRegisterDevicesResponse* response) {
    auto context = cli.NewContext();
    return stub->BatchRegisterDevices(context.get(), request, response);
  };
  ImportSummary summary = RunImport(*reader, done, results, send, options);
  std::signal(SIGINT, previous_handler);
  results.close();
  if (tty) std::cerr << "\n";
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cerr << "fleetca: import: " << SummaryLine(summary)
            << absl::StrFormat(" in %.1fs; results in %s", secs, results_path)
            << (summary.interrupted ? " (interrupted: run the same command again to resume)" : "")
            << "\n";
  if (cli.Format() == OutputFormat::kJson) {
    std::cout << absl::StrFormat(
        "{\"rows\": %d, \"registered\": %d, \"exists\": %d, \"failed\": %d, \"skipped\": %d, "
        "\"interrupted\": %s, \"results\": \"%s\"}\n",
        summary.rows, summary.registered, summary.exists, summary.failed, summary.skipped,
        summary.interrupted ? "true" : "false", results_path);
  }
  if (!summary.error.ok()) {
    Cli::Check(summary.error);
  }
  if (summary.interrupted) throw CliError(kExitInterrupted, "import interrupted");
  if (summary.failed > 0) {
    throw CliError(kExitPartial, absl::StrCat(summary.failed, " rows failed (see ", results_path,
                                              "; fix them and run the import again)"));
  }
}

}  // namespace

void AddDeviceCommands(CLI::App& app, Cli& cli) {
  CLI::App* noun = Noun(&app, "device", "device registry (DeviceRegistryService)");

  {  // register
    auto o = std::make_shared<DeviceFields>();
    auto id = std::make_shared<std::string>();
    CLI::App* c =
        Leaf(noun, cli, "register", "register one device (RegisterDevice)", [&cli, o, id] {
          auto stub = Registry::NewStub(cli.Channel());
          v1::RegisterDeviceRequest req;
          v1::Device* d = req.mutable_device();
          d->set_comm_id(*id);
          d->set_display_name(o->display_name);
          for (const std::string& g : o->groups) {
            for (absl::string_view part : absl::StrSplit(g, ',', absl::SkipEmpty())) {
              d->add_groups(std::string(part));
            }
          }
          ParseAttributes(o->attributes, "--attr", d->mutable_attributes());
          if (!o->status.empty()) {
            d->set_status(static_cast<v1::DeviceStatus>(
                ParseEnum(v1::DeviceStatus_descriptor(), o->status, "--status")));
          }
          ShowDevice(cli, cli.Call(stub.get(), &Registry::Stub::RegisterDevice, req).device());
        });
    c->add_option("comm_id", *id, "comm-ID (IMEI, serial number)")->required();
    c->add_option("--display-name", o->display_name, "label for people");
    c->add_option("--group", o->groups, "group (repeat, or comma-separated)");
    c->add_option("--attr", o->attributes, "attribute KEY=VALUE (repeat)");
    c->add_option("--status", o->status, "initial status: active (default) or suspended");
  }

  {  // import
    struct Opts {
      std::string input, format, results;
      int batch_size = 500;
      bool no_progress = false;
    };
    auto o = std::make_shared<Opts>();
    CLI::App* c = Leaf(
        noun, cli, "import",
        "register devices from a CSV or JSON-lines file, in batches "
        "(BatchRegisterDevices); resumable",
        [&cli, o] { Import(cli, o->input, o->format, o->results, o->batch_size, o->no_progress); });
    c->add_option("file", o->input, "input file, or - for standard input")->required();
    c->add_option("--format", o->format, "csv or jsonl (default: from the file name)");
    c->add_option("--results", o->results,
                  "per-row result file, JSON lines, appended (default: <file>.results.jsonl); "
                  "rows it records as done are skipped");
    c->add_option("--batch-size", o->batch_size, "devices per BatchRegisterDevices call (1-10000)")
        ->capture_default_str();
    c->add_flag("--no-progress", o->no_progress, "no progress bar even on a terminal");
  }

  {  // get
    auto id = std::make_shared<std::string>();
    CLI::App* c = Leaf(noun, cli, "get", "show one device (GetDevice)", [&cli, id] {
      auto stub = Registry::NewStub(cli.Channel());
      v1::GetDeviceRequest req;
      req.set_comm_id(*id);
      ShowDevice(cli, cli.Call(stub.get(), &Registry::Stub::GetDevice, req).device());
    });
    c->add_option("comm_id", *id, "comm-ID")->required();
  }

  {  // list
    struct Opts {
      std::string status, prefix, group;
      std::vector<std::string> attributes;
      int64_t limit = 500;
    };
    auto o = std::make_shared<Opts>();
    CLI::App* c = Leaf(noun, cli, "list", "list devices by comm-ID (ListDevices)", [&cli, o] {
      auto stub = Registry::NewStub(cli.Channel());
      v1::ListDevicesRequest req;
      if (!o->status.empty()) {
        req.set_status(static_cast<v1::DeviceStatus>(
            ParseEnum(v1::DeviceStatus_descriptor(), o->status, "--status")));
      }
      req.set_comm_id_prefix(o->prefix);
      req.set_group(o->group);
      ParseAttributes(o->attributes, "--attr", req.mutable_attribute_filter());
      auto all = cli.List(stub.get(), &Registry::Stub::ListDevices, req, o->limit, "devices");
      ShowList(cli, all, "devices", kDeviceColumns);
    });
    c->add_option("--status", o->status, EnumChoices(v1::DeviceStatus_descriptor()));
    c->add_option("--prefix", o->prefix, "comm-IDs starting with this");
    c->add_option("--group", o->group, "members of this group");
    c->add_option("--attr", o->attributes, "attribute KEY=VALUE (repeat: all must match)");
    AddLimit(c, &o->limit);
  }

  {  // update
    struct Opts : DeviceFields {
      std::string id;
      std::vector<std::string> remove_attr;
      bool clear_groups = false;
      bool clear_attributes = false;
      bool display_name_set = false;
    };
    auto o = std::make_shared<Opts>();
    CLI::App* c =
        Leaf(noun, cli, "update",
             "change display name, groups or attributes (UpdateDevice; only the "
             "fields given)",
             [&cli, o] {
               auto stub = Registry::NewStub(cli.Channel());
               v1::UpdateDeviceRequest req;
               v1::Device* d = req.mutable_device();
               d->set_comm_id(o->id);
               req.set_etag(o->etag);
               if (o->display_name_set) {
                 d->set_display_name(o->display_name);
                 req.mutable_update_mask()->add_paths("display_name");
               }
               if (!o->groups.empty() || o->clear_groups) {
                 for (const std::string& g : o->groups) {
                   for (absl::string_view p : absl::StrSplit(g, ',', absl::SkipEmpty())) {
                     d->add_groups(std::string(p));
                   }
                 }
                 req.mutable_update_mask()->add_paths("groups");
               }
               if (!o->attributes.empty() || !o->remove_attr.empty() || o->clear_attributes) {
                 // Attributes are replaced as a whole: start from the current
                 // ones unless --clear-attributes.
                 if (!o->clear_attributes) {
                   v1::GetDeviceRequest get;
                   get.set_comm_id(o->id);
                   auto current = cli.Call(stub.get(), &Registry::Stub::GetDevice, get).device();
                   *d->mutable_attributes() = current.attributes();
                   if (req.etag().empty()) req.set_etag(current.etag());
                 }
                 ParseAttributes(o->attributes, "--attr", d->mutable_attributes());
                 for (const std::string& k : o->remove_attr) d->mutable_attributes()->erase(k);
                 req.mutable_update_mask()->add_paths("attributes");
               }
               if (req.update_mask().paths_size() == 0) {
                 throw UsageError(
                     "nothing to update: give --display-name, --group, --clear-groups, "
                     "--attr, --remove-attr or --clear-attributes");
               }
               ShowDevice(cli, cli.Call(stub.get(), &Registry::Stub::UpdateDevice, req).device());
             });
    c->add_option("comm_id", o->id, "comm-ID")->required();
    c->add_option("--display-name", o->display_name, "new label")->each([o](const std::string&) {
      o->display_name_set = true;
    });
    c->add_option("--group", o->groups, "the groups (replace all; repeat or comma-separate)");
    c->add_flag("--clear-groups", o->clear_groups, "remove every group");
    c->add_option("--attr", o->attributes, "set attribute KEY=VALUE (repeat; others kept)");
    c->add_option("--remove-attr", o->remove_attr, "remove attribute KEY (repeat)");
    c->add_flag("--clear-attributes", o->clear_attributes, "remove every attribute first");
    c->add_option("--etag", o->etag, "only if the device still has this etag (else ABORTED)");
  }

  // suspend / resume / decommission: SetDeviceStatus.
  struct StatusCmd {
    const char* name;
    const char* help;
    v1::DeviceStatus status;
  };
  for (const StatusCmd& sc : {
           StatusCmd{"suspend",
                     "suspend a device: brokers and issuance refuse it (SetDeviceStatus)",
                     v1::DEVICE_STATUS_SUSPENDED},
           StatusCmd{"resume", "make a suspended device active again (SetDeviceStatus)",
                     v1::DEVICE_STATUS_ACTIVE},
           StatusCmd{"decommission", "retire a device for good (SetDeviceStatus; final)",
                     v1::DEVICE_STATUS_DECOMMISSIONED},
       }) {
    auto o = std::make_shared<DeviceFields>();
    auto id = std::make_shared<std::string>();
    const v1::DeviceStatus status = sc.status;
    CLI::App* c = Leaf(noun, cli, sc.name, sc.help, [&cli, o, id, status] {
      auto stub = Registry::NewStub(cli.Channel());
      v1::SetDeviceStatusRequest req;
      req.set_comm_id(*id);
      req.set_status(status);
      req.set_reason(o->reason);
      req.set_etag(o->etag);
      ShowDevice(cli, cli.Call(stub.get(), &Registry::Stub::SetDeviceStatus, req).device());
    });
    c->add_option("comm_id", *id, "comm-ID")->required();
    c->add_option("--reason", o->reason, "why (recorded as status_reason)");
    c->add_option("--etag", o->etag, "only if the device still has this etag (else ABORTED)");
  }

  {  // delete
    auto o = std::make_shared<DeviceFields>();
    auto id = std::make_shared<std::string>();
    CLI::App* c = Leaf(noun, cli, "delete",
                       "remove a device never issued a certificate (DeleteDevice; otherwise "
                       "decommission it)",
                       [&cli, o, id] {
                         auto stub = Registry::NewStub(cli.Channel());
                         v1::DeleteDeviceRequest req;
                         req.set_comm_id(*id);
                         req.set_etag(o->etag);
                         cli.Call(stub.get(), &Registry::Stub::DeleteDevice, req);
                         if (cli.Format() == OutputFormat::kJson) {
                           std::cout << "{}\n";
                         } else {
                           std::cout << "deleted device " << *id << "\n";
                         }
                       });
    c->add_option("comm_id", *id, "comm-ID")->required();
    c->add_option("--etag", o->etag, "only if the device still has this etag (else ABORTED)");
  }
}

}  // namespace fleetca::cli
