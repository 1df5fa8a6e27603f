// fleetca acl ...: AclService.

#include <google/protobuf/util/json_util.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli/cli.h"
#include "cli/output.h"
#include "fleetca/v1/acl.grpc.pb.h"

namespace fleetca::cli {

namespace {

using Acl = v1::AclService;

std::string RuleText(const v1::AclRule& r) {
  return absl::AsciiStrToLower(FieldText(r, "access")) + ":" + r.topic_pattern();
}

void ShowProfiles(Cli& cli, const v1::ListAclProfilesResponse& list) {
  if (cli.Format() != OutputFormat::kTable) {
    ShowList(cli, list, "profiles", {});
    return;
  }
  Table t({"NAME", "BUILTIN", "RULES", "DESCRIPTION"});
  for (const v1::AclProfile& p : list.profiles()) {
    std::vector<std::string> rules;
    for (const v1::AclRule& r : p.rules()) rules.push_back(RuleText(r));
    t.AddRow({p.name(), p.builtin() ? "yes" : "no", absl::StrJoin(rules, " "), p.description()});
  }
  std::cout << t.Render();
}

void ShowProfile(Cli& cli, const v1::AclProfile& p) {
  if (cli.Format() != OutputFormat::kTable) {
    Show(cli, p);
    return;
  }
  v1::AclProfile head = p;
  head.clear_rules();
  std::cout << Describe(head);
  Table t({"ACCESS", "TOPIC-PATTERN"});
  for (const v1::AclRule& r : p.rules()) t.AddRow({FieldText(r, "access"), r.topic_pattern()});
  std::cout << "rules:\n" << t.Render();
}

// "readwrite:devices/%c/#" -> a rule.
v1::AclRule ParseRule(const std::string& text) {
  const size_t colon = text.find(':');
  if (colon == std::string::npos) {
    throw UsageError("--rule: '" + text + "' is not ACCESS:PATTERN (ACCESS: " +
                     EnumChoices(v1::AclAccess_descriptor()) + ")");
  }
  v1::AclRule rule;
  rule.set_access(static_cast<v1::AclAccess>(
      ParseEnum(v1::AclAccess_descriptor(), text.substr(0, colon), "--rule")));
  rule.set_topic_pattern(text.substr(colon + 1));
  return rule;
}

struct SubjectArgs {
  std::string device, group, identity;
  bool all_devices = false;
};

void AddSubjectArgs(CLI::App* c, SubjectArgs* s) {
  c->add_option("--device", s->device, "a device (comm-ID)");
  c->add_option("--group", s->group, "a device group");
  c->add_option("--identity", s->identity, "an identity (name)");
  c->add_flag("--all-devices", s->all_devices, "every device");
}

// Sets the subject of `a`; `required`: exactly one must be given (else at most one).
void SetSubject(const SubjectArgs& s, v1::AclAssignment* a, bool required) {
  int n = 0;
  if (!s.device.empty()) {
    a->set_subject_type(v1::ACL_SUBJECT_TYPE_DEVICE);
    a->set_subject_id(s.device);
    ++n;
  }
  if (!s.group.empty()) {
    a->set_subject_type(v1::ACL_SUBJECT_TYPE_GROUP);
    a->set_subject_id(s.group);
    ++n;
  }
  if (!s.identity.empty()) {
    a->set_subject_type(v1::ACL_SUBJECT_TYPE_IDENTITY);
    a->set_subject_id(s.identity);
    ++n;
  }
  if (s.all_devices) {
    a->set_subject_type(v1::ACL_SUBJECT_TYPE_ALL_DEVICES);
    ++n;
  }
  if (n > 1 || (required && n == 0)) {
    throw UsageError("give one subject: --device, --group, --identity or --all-devices");
  }
}

const std::vector<Column> kAssignmentColumns = {
    {"SUBJECT-TYPE", "subject_type"},
    {"SUBJECT", "subject_id"},
    {"PROFILE", "profile_name"},
    {"CREATED", "create_time"},
};

struct ProfileArgs {
  std::string name, description, from_file, etag;
  std::vector<std::string> rules;
  bool description_set = false;
  bool clear_rules = false;
};

// The profile from --from-file (protobuf JSON of an AclProfile) and the flags over it.
v1::AclProfile ProfileFrom(const ProfileArgs& o) {
  v1::AclProfile p;
  if (!o.from_file.empty()) {
    auto st = google::protobuf::util::JsonStringToMessage(ReadInputFile(o.from_file), &p);
    if (!st.ok()) {
      throw UsageError("--from-file: not an AclProfile in JSON: " + std::string(st.message()));
    }
  }
  if (!o.name.empty()) p.set_name(o.name);
  if (o.description_set) p.set_description(o.description);
  if (!o.rules.empty()) {
    p.clear_rules();
    for (const std::string& r : o.rules) *p.add_rules() = ParseRule(r);
  }
  return p;
}

void AddProfileArgs(CLI::App* c, ProfileArgs* o) {
  c->add_option("--description", o->description, "free text")->each([o](const std::string&) {
    o->description_set = true;
  });
  c->add_option("--rule", o->rules,
                "ACCESS:PATTERN, e.g. readwrite:sites/%{site}/%c/# (repeat; ACCESS: " +
                    EnumChoices(v1::AclAccess_descriptor()) + ")");
  c->add_option("--from-file", o->from_file, "an AclProfile in protobuf JSON (flags override it)");
}

}  // namespace

void AddAclCommands(CLI::App& app, Cli& cli) {
  CLI::App* noun = Noun(&app, "acl", "MQTT topic policy: profiles, assignments (AclService)");
  CLI::App* profile = Noun(noun, "profile", "ACL profiles: named sets of topic rules");

  {  // profile create
    auto o = std::make_shared<ProfileArgs>();
    CLI::App* c = Leaf(profile, cli, "create", "create a profile (CreateAclProfile)", [&cli, o] {
      auto stub = Acl::NewStub(cli.Channel());
      v1::CreateAclProfileRequest req;
      *req.mutable_profile() = ProfileFrom(*o);
      ShowProfile(cli, cli.Call(stub.get(), &Acl::Stub::CreateAclProfile, req).profile());
    });
    c->add_option("name", o->name, "profile name");
    AddProfileArgs(c, o.get());
  }
  {  // profile get
    auto name = std::make_shared<std::string>();
    CLI::App* c = Leaf(profile, cli, "get", "show a profile (GetAclProfile)", [&cli, name] {
      auto stub = Acl::NewStub(cli.Channel());
      v1::GetAclProfileRequest req;
      req.set_name(*name);
      ShowProfile(cli, cli.Call(stub.get(), &Acl::Stub::GetAclProfile, req).profile());
    });
    c->add_option("name", *name, "profile name")->required();
  }
  {  // profile list
    auto limit = std::make_shared<int64_t>(500);
    CLI::App* c = Leaf(profile, cli, "list", "list profiles (ListAclProfiles)", [&cli, limit] {
      auto stub = Acl::NewStub(cli.Channel());
      ShowProfiles(cli, cli.List(stub.get(), &Acl::Stub::ListAclProfiles,
                                 v1::ListAclProfilesRequest(), *limit, "profiles"));
    });
    AddLimit(c, limit.get());
  }
  {  // profile update
    auto o = std::make_shared<ProfileArgs>();
    CLI::App* c =
        Leaf(profile, cli, "update", "replace a profile's description or rules (UpdateAclProfile)",
             [&cli, o] {
               auto stub = Acl::NewStub(cli.Channel());
               v1::UpdateAclProfileRequest req;
               *req.mutable_profile() = ProfileFrom(*o);
               req.set_etag(o->etag);
               if (o->description_set || (!o->from_file.empty())) {
                 req.mutable_update_mask()->add_paths("description");
               }
               if (!o->rules.empty() || o->clear_rules || !o->from_file.empty()) {
                 if (o->clear_rules) req.mutable_profile()->clear_rules();
                 req.mutable_update_mask()->add_paths("rules");
               }
               if (req.update_mask().paths_size() == 0) {
                 throw UsageError(
                     "nothing to update: give --description, --rule, --clear-rules or "
                     "--from-file");
               }
               ShowProfile(cli, cli.Call(stub.get(), &Acl::Stub::UpdateAclProfile, req).profile());
             });
    c->add_option("name", o->name, "profile name")->required();
    AddProfileArgs(c, o.get());
    c->add_flag("--clear-rules", o->clear_rules, "remove every rule");
    c->add_option("--etag", o->etag, "only if unchanged since this etag (else ABORTED)");
  }
  {  // profile delete
    auto o = std::make_shared<ProfileArgs>();
    CLI::App* c =
        Leaf(profile, cli, "delete", "delete an unassigned profile (DeleteAclProfile)", [&cli, o] {
          auto stub = Acl::NewStub(cli.Channel());
          v1::DeleteAclProfileRequest req;
          req.set_name(o->name);
          req.set_etag(o->etag);
          cli.Call(stub.get(), &Acl::Stub::DeleteAclProfile, req);
          std::cout << (cli.Format() == OutputFormat::kJson ? std::string("{}\n")
                                                            : "deleted profile " + o->name + "\n");
        });
    c->add_option("name", o->name, "profile name")->required();
    c->add_option("--etag", o->etag, "only if unchanged since this etag (else ABORTED)");
  }

  {  // assign
    struct Opts : SubjectArgs {
      std::string profile;
    };
    auto o = std::make_shared<Opts>();
    CLI::App* c =
        Leaf(noun, cli, "assign", "assign a profile to a subject (AssignAclProfile)", [&cli, o] {
          auto stub = Acl::NewStub(cli.Channel());
          v1::AssignAclProfileRequest req;
          req.mutable_assignment()->set_profile_name(o->profile);
          SetSubject(*o, req.mutable_assignment(), true);
          auto resp = cli.Call(stub.get(), &Acl::Stub::AssignAclProfile, req);
          if (resp.already_assigned()) std::cerr << "fleetca: already assigned\n";
          Show(cli, resp);
        });
    c->add_option("profile", o->profile, "profile name")->required();
    AddSubjectArgs(c, o.get());
  }
  {  // unassign
    struct Opts : SubjectArgs {
      std::string profile;
    };
    auto o = std::make_shared<Opts>();
    CLI::App* c =
        Leaf(noun, cli, "unassign", "remove an assignment (UnassignAclProfile)", [&cli, o] {
          auto stub = Acl::NewStub(cli.Channel());
          v1::UnassignAclProfileRequest req;
          req.mutable_assignment()->set_profile_name(o->profile);
          SetSubject(*o, req.mutable_assignment(), true);
          cli.Call(stub.get(), &Acl::Stub::UnassignAclProfile, req);
          std::cout << (cli.Format() == OutputFormat::kJson ? std::string("{}\n")
                                                            : "unassigned " + o->profile + "\n");
        });
    c->add_option("profile", o->profile, "profile name")->required();
    AddSubjectArgs(c, o.get());
  }
  {  // assignments
    struct Opts : SubjectArgs {
      std::string profile;
      int64_t limit = 500;
    };
    auto o = std::make_shared<Opts>();
    CLI::App* c =
        Leaf(noun, cli, "assignments", "list assignments (ListAclAssignments)", [&cli, o] {
          auto stub = Acl::NewStub(cli.Channel());
          v1::ListAclAssignmentsRequest req;
          v1::AclAssignment filter;
          SetSubject(*o, &filter, false);
          req.set_subject_type(filter.subject_type());
          req.set_subject_id(filter.subject_id());
          req.set_profile_name(o->profile);
          auto all =
              cli.List(stub.get(), &Acl::Stub::ListAclAssignments, req, o->limit, "assignments");
          ShowList(cli, all, "assignments", kAssignmentColumns);
        });
    c->add_option("--profile", o->profile, "of this profile");
    AddSubjectArgs(c, o.get());
    AddLimit(c, &o->limit);
  }
  {  // resolve
    struct Opts {
      std::string device, identity;
    };
    auto o = std::make_shared<Opts>();
    CLI::App* c = Leaf(
        noun, cli, "resolve", "the effective rules of a device or identity (ResolveAcl)",
        [&cli, o] {
          if (o->device.empty() == o->identity.empty()) {
            throw UsageError("give --device COMM_ID or --identity NAME");
          }
          auto stub = Acl::NewStub(cli.Channel());
          v1::ResolveAclRequest req;
          req.mutable_principal()->set_type(o->device.empty() ? v1::PRINCIPAL_TYPE_IDENTITY
                                                              : v1::PRINCIPAL_TYPE_DEVICE);
          req.mutable_principal()->set_id(o->device.empty() ? o->identity : o->device);
          auto resp = cli.Call(stub.get(), &Acl::Stub::ResolveAcl, req);
          if (cli.Format() != OutputFormat::kTable) {
            Show(cli, resp);
            return;
          }
          std::cout << "principal: " << FieldText(resp, "principal") << "\n"
                    << "active:    " << (resp.active() ? "yes" : "no") << "\n"
                    << "profiles:  " << absl::StrJoin(resp.profile_names(), ",") << "\n\n";
          Table t({"ACCESS", "TOPIC-FILTER", "PROFILE", "FROM", "PATTERN"});
          for (const auto& r : resp.rules()) {
            t.AddRow({FieldText(r, "access"), r.topic_filter(), r.profile_name(),
                      absl::AsciiStrToLower(FieldText(r, "subject_type")) +
                          (r.subject_id().empty() ? "" : "/" + r.subject_id()),
                      r.topic_pattern()});
          }
          std::cout << t.Render();
          if (resp.skipped_rules_size() > 0) {
            Table s({"SKIPPED", "PATTERN", "PROFILE", "REASON"});
            for (const auto& r : resp.skipped_rules()) {
              s.AddRow({FieldText(r, "access"), r.topic_pattern(), r.profile_name(), r.reason()});
            }
            std::cout << "\n" << s.Render();
          }
        });
    c->add_option("--device", o->device, "a device (comm-ID)");
    c->add_option("--identity", o->identity, "an identity (name)");
  }
}

}  // namespace fleetca::cli
