// fleetca audit ...: AuditService.

#include <CLI/CLI.hpp>
#include <iostream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "cli/cli.h"
#include "cli/output.h"
#include "fleetca/v1/audit.grpc.pb.h"

namespace fleetca::cli {

namespace {
using Audit = v1::AuditService;
}  // namespace

void AddAuditCommands(CLI::App& app, Cli& cli) {
  CLI::App* noun = Noun(&app, "audit", "the audit log (AuditService)");
  {  // list
    struct Opts {
      std::string since, until, actor, method, resource_type, resource_id, request_id;
      bool failures = false, newest_first = false;
      int64_t limit = 500;
    };
    auto o = std::make_shared<Opts>();
    CLI::App* c = Leaf(noun, cli, "list", "list audit events (ListAuditEvents)", [&cli, o] {
      auto stub = Audit::NewStub(cli.Channel());
      v1::ListAuditEventsRequest req;
      if (!o->since.empty()) *req.mutable_start_time() = ParseTimestamp(o->since, "--since");
      if (!o->until.empty()) *req.mutable_end_time() = ParseTimestamp(o->until, "--until");
      req.set_actor_name(o->actor);
      req.set_method(o->method);
      if (!o->resource_type.empty()) {
        req.set_resource_type(static_cast<v1::AuditResourceType>(
            ParseEnum(v1::AuditResourceType_descriptor(), o->resource_type, "--resource-type")));
      }
      req.set_resource_id(o->resource_id);
      req.set_request_id(o->request_id);
      req.set_failures_only(o->failures);
      req.set_newest_first(o->newest_first);
      auto all = cli.List(stub.get(), &Audit::Stub::ListAuditEvents, req, o->limit, "events");
      if (cli.Format() != OutputFormat::kTable) {
        ShowList(cli, all, "events", {});
        return;
      }
      Table t(
          {"SEQ", "TIME", "ACTOR", "ROLE", "METHOD", "RESOURCE", "CODE", "REQUEST-ID", "MESSAGE"});
      for (const v1::AuditEvent& e : all.events()) {
        const std::string type = absl::AsciiStrToLower(FieldText(e, "resource_type"));
        std::string method = e.method();
        if (absl::StartsWith(method, "/fleetca.v1.")) method = method.substr(12);
        t.AddRow({std::to_string(e.sequence()), FieldText(e, "time"), e.actor().name(),
                  absl::AsciiStrToLower(FieldText(e, "actor.role")), method,
                  e.resource_id().empty() ? type : type + "/" + e.resource_id(),
                  StatusCodeName(e.code()), e.request_id(), e.message()});
      }
      std::cout << t.Render();
    });
    c->add_option("--since", o->since, "events at or after this time (RFC 3339)");
    c->add_option("--until", o->until, "events before this time (RFC 3339)");
    c->add_option("--actor", o->actor, "by this identity");
    c->add_option("--method", o->method, "of this RPC (e.g. RegisterDevice)");
    c->add_option("--resource-type", o->resource_type,
                  EnumChoices(v1::AuditResourceType_descriptor()));
    c->add_option("--resource-id", o->resource_id, "about this resource");
    c->add_option("--for-request", o->request_id, "with this x-request-id");
    c->add_flag("--failures", o->failures, "failed calls only");
    c->add_flag("--newest-first", o->newest_first, "newest first");
    AddLimit(c, &o->limit);
  }
  {  // verify
    struct Opts {
      int64_t from = 0, to = 0, anchor_sequence = 0;
      std::string anchor_hash;
    };
    auto o = std::make_shared<Opts>();
    CLI::App* c =
        Leaf(noun, cli, "verify",
             "check the audit hash chain (VerifyAuditChain); exit 1 when it is broken", [&cli, o] {
               auto stub = Audit::NewStub(cli.Channel());
               v1::VerifyAuditChainRequest req;
               req.set_from_sequence(o->from);
               req.set_to_sequence(o->to);
               req.set_anchor_sequence(o->anchor_sequence);
               req.set_anchor_hash(o->anchor_hash);
               auto resp = cli.Call(stub.get(), &Audit::Stub::VerifyAuditChain, req);
               Show(cli, resp);
               if (!resp.intact()) {
                 throw CliError(kExitError, absl::StrCat("audit chain broken at sequence ",
                                                         resp.first_break_sequence(), ": ",
                                                         resp.break_reason()));
               }
             });
    c->add_option("--from", o->from, "first sequence to check (0: the first)");
    c->add_option("--to", o->to, "last sequence to check (0: the last)");
    c->add_option("--anchor-sequence", o->anchor_sequence, "a sequence whose hash you kept");
    c->add_option("--anchor-hash", o->anchor_hash, "that hash");
  }
}

}  // namespace fleetca::cli
