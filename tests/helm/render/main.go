// render: renders the Helm chart without Helm and checks the result (tests/helm/README.md).
//
//	render -chart helm/fleetca -cases tests/helm/cases          run every case (ctest helm.render)
//	render -chart helm/fleetca -f my-values.yaml [-name R] [-namespace NS]
//	                                                            print the manifests, like `helm template`
//
// Built from Debian's Go sources only (GO111MODULE=off GOPATH=/usr/share/gocode): text/template,
// sprig v3 (golang-github-masterminds-sprig-dev), yaml.v2 and yaml.v3.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	semver "github.com/Masterminds/semver" // v3, Debian golang-github-masterminds-semver-dev
)

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// Case is one file of tests/helm/cases.
type Case struct {
	Description string                 `json:"description"`
	Release     *ReleaseOptions        `json:"release"`
	ValuesFiles []string               `json:"valuesFiles"` // relative to the case file, merged in order (helm -f)
	Values      map[string]interface{} `json:"values"`      // merged last
	KubeVersion string                 `json:"kubeVersion"`
	IsUpgrade   bool                   `json:"isUpgrade"`
	ExpectError string                 `json:"expectError"` // the render must fail with this text
	// The render succeeds and the checks find these problems (the checker's own tests).
	ExpectProblems []string `json:"expectProblems"`
	Asserts        []Assert `json:"asserts"`
}

func main() {
	chartDir := flag.String("chart", "helm/fleetca", "the chart directory")
	casesDir := flag.String("cases", "", "run every *.yaml case of this directory")
	var valueFiles stringList
	flag.Var(&valueFiles, "f", "values file (repeatable), for printing the manifests")
	name := flag.String("name", "fleetca", "release name")
	namespace := flag.String("namespace", "default", "release namespace")
	kubeVersion := flag.String("kube-version", "v1.29.0", "Kubernetes version (.Capabilities.KubeVersion)")
	lint := flag.Bool("lint", true, "with -cases: check Chart.yaml and that README.md documents every value")
	flag.Parse()

	chart, err := loadChart(*chartDir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "Error: %v\n", err)
		os.Exit(1)
	}
	if *casesDir == "" {
		os.Exit(printTemplate(chart, valueFiles, ReleaseOptions{Name: *name, Namespace: *namespace, Revision: 1, IsInstall: true}, *kubeVersion))
	}
	os.Exit(runCases(chart, *chartDir, *casesDir, *kubeVersion, *lint))
}

func capabilities(kubeVersion string) (*Capabilities, error) {
	v, err := semver.NewVersion(kubeVersion)
	if err != nil {
		return nil, fmt.Errorf("kube version %q: %v", kubeVersion, err)
	}
	return &Capabilities{
		APIVersions: append(VersionSet{}, defaultAPIVersions...),
		KubeVersion: KubeVersion{Version: "v" + v.String(), Major: fmt.Sprint(v.Major()), Minor: fmt.Sprint(v.Minor()), GitVersion: "v" + v.String()},
		HelmVersion: HelmVersion{Version: "v3.14.0", GoVersion: "go1.19"},
	}, nil
}

func checkKubeVersion(constraint, version string) error {
	if constraint == "" {
		return nil
	}
	c, err := semver.NewConstraint(constraint)
	if err != nil {
		return fmt.Errorf("Chart.yaml kubeVersion %q: %v", constraint, err)
	}
	v, err := semver.NewVersion(version)
	if err != nil {
		return err
	}
	if !c.Check(v) {
		return fmt.Errorf("chart requires kubeVersion: %s which is incompatible with Kubernetes %s", constraint, version)
	}
	return nil
}

func parseSemver(s string) (*semver.Version, error) { return semver.StrictNewVersion(s) }

func readValuesFile(p string) (map[string]interface{}, error) {
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	m, err := sigsUnmarshalMap(data)
	if err != nil {
		return nil, fmt.Errorf("failed to parse %s: %v", p, err)
	}
	return m, nil
}

func printTemplate(chart *Chart, files []string, rel ReleaseOptions, kubeVersion string) int {
	user := map[string]interface{}{}
	for _, f := range files {
		m, err := readValuesFile(f)
		if err != nil {
			fmt.Fprintf(os.Stderr, "Error: %v\n", err)
			return 1
		}
		user = mergeMaps(user, m)
	}
	caps, err := capabilities(kubeVersion)
	if err != nil {
		fmt.Fprintf(os.Stderr, "Error: %v\n", err)
		return 1
	}
	res, err := renderRelease(chart, user, rel, caps)
	if err != nil {
		fmt.Fprintf(os.Stderr, "Error: %v\n", err)
		return 1
	}
	for _, m := range sortForInstall(res.Manifests) {
		fmt.Printf("---\n# Source: %s\n%s", m.Source, m.Text)
	}
	problems := runChecks(res, rel)
	for _, p := range problems {
		fmt.Fprintf(os.Stderr, "check: %s\n", p)
	}
	if len(problems) > 0 {
		return 1
	}
	return 0
}

// installOrder is releaseutil.InstallOrder (the kinds this chart uses, in Helm's order).
var installOrder = []string{"Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange", "PodSecurityPolicy",
	"PodDisruptionBudget", "ServiceAccount", "Secret", "SecretList", "ConfigMap", "StorageClass",
	"PersistentVolume", "PersistentVolumeClaim", "CustomResourceDefinition", "ClusterRole", "ClusterRoleList",
	"ClusterRoleBinding", "ClusterRoleBindingList", "Role", "RoleList", "RoleBinding", "RoleBindingList",
	"Service", "DaemonSet", "Pod", "ReplicationController", "ReplicaSet", "Deployment",
	"HorizontalPodAutoscaler", "StatefulSet", "Job", "CronJob", "IngressClass", "Ingress", "APIService"}

// sortForInstall: hooks apart as Helm does; the rest in install order (unknown kinds last).
func sortForInstall(ms []Manifest) []Manifest {
	rank := map[string]int{}
	for i, k := range installOrder {
		rank[k] = i
	}
	out := append([]Manifest{}, ms...)
	sort.SliceStable(out, func(i, j int) bool {
		if hi, hj := isHook(out[i].Object), isHook(out[j].Object); hi != hj {
			return hj // hooks last, as `helm template` prints them
		}
		ki, kj := mstr(out[i].Object, "kind"), mstr(out[j].Object, "kind")
		ri, ok := rank[ki]
		if !ok {
			ri = len(installOrder)
		}
		rj, ok := rank[kj]
		if !ok {
			rj = len(installOrder)
		}
		return ri < rj
	})
	return out
}

func runCases(chart *Chart, chartDir, casesDir, kubeVersion string, lint bool) int {
	failed := 0
	readme, err := os.ReadFile(filepath.Join(chartDir, "README.md"))
	if !lint {
		fmt.Printf("ok   chart lint skipped (-lint=false)\n")
	} else if err != nil {
		fmt.Printf("FAIL chart: %v\n", err)
		failed++
	} else if problems := lintChart(chart, string(readme)); len(problems) > 0 {
		fmt.Printf("FAIL chart lint\n")
		for _, p := range problems {
			fmt.Printf("    %s\n", p)
		}
		failed++
	} else {
		fmt.Printf("ok   chart lint (Chart.yaml, every value of values.yaml in README.md)\n")
	}
	caseFiles, _ := filepath.Glob(filepath.Join(casesDir, "*.yaml"))
	sort.Strings(caseFiles)
	if len(caseFiles) == 0 {
		fmt.Printf("FAIL no cases in %s\n", casesDir)
		return 1
	}
	for _, cf := range caseFiles {
		name := strings.TrimSuffix(filepath.Base(cf), ".yaml")
		problems, summary := runCase(chart, cf, kubeVersion)
		if len(problems) > 0 {
			failed++
			fmt.Printf("FAIL %s\n", name)
			for _, p := range problems {
				fmt.Printf("    %s\n", strings.ReplaceAll(p, "\n", "\n    "))
			}
		} else {
			fmt.Printf("ok   %s: %s\n", name, summary)
		}
	}
	if failed > 0 {
		fmt.Printf("%d of %d failed\n", failed, len(caseFiles)+1)
		return 1
	}
	fmt.Printf("all %d passed\n", len(caseFiles)+1)
	return 0
}

func runCase(chart *Chart, caseFile, defaultKube string) ([]string, string) {
	raw, err := readValuesFile(caseFile)
	if err != nil {
		return []string{err.Error()}, ""
	}
	b, _ := json.Marshal(raw)
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	var tc Case
	if err := dec.Decode(&tc); err != nil {
		return []string{fmt.Sprintf("case file: %v", err)}, ""
	}
	rel := ReleaseOptions{Name: "fleetca", Namespace: "default", Revision: 1, IsInstall: true}
	if tc.Release != nil {
		rel = *tc.Release
		if rel.Revision == 0 {
			rel.Revision = 1
		}
	}
	if tc.IsUpgrade {
		rel.IsInstall, rel.IsUpgrade, rel.Revision = false, true, rel.Revision+1
	}
	user := map[string]interface{}{}
	for _, f := range tc.ValuesFiles {
		m, err := readValuesFile(filepath.Join(filepath.Dir(caseFile), f))
		if err != nil {
			return []string{err.Error()}, ""
		}
		user = mergeMaps(user, m)
	}
	if tc.Values != nil {
		// Values in the case file went through JSON: numbers are float64 as in a values file.
		user = mergeMaps(user, tc.Values)
	}
	kube := defaultKube
	if tc.KubeVersion != "" {
		kube = tc.KubeVersion
	}
	caps, err := capabilities(kube)
	if err != nil {
		return []string{err.Error()}, ""
	}
	warnings = nil
	res, err := renderRelease(chart, user, rel, caps)
	if tc.ExpectError != "" {
		if err == nil {
			return []string{fmt.Sprintf("rendered, but should fail with %q", tc.ExpectError)}, ""
		}
		if !strings.Contains(err.Error(), tc.ExpectError) {
			return []string{fmt.Sprintf("failed with:\n%v\nwant an error containing %q", err, tc.ExpectError)}, ""
		}
		return nil, "fails as expected: " + firstLine(lastLine(err.Error()))
	}
	if err != nil {
		return []string{"Error: " + err.Error()}, ""
	}
	problems := runChecks(res, rel)
	problems = append(problems, runAsserts(res, tc.Asserts)...)
	for _, w := range warnings {
		problems = append(problems, "coalesce "+w)
	}
	if len(tc.ExpectProblems) > 0 {
		var missing []string
		for _, want := range tc.ExpectProblems {
			found := false
			for _, p := range problems {
				if strings.Contains(p, want) {
					found = true
				}
			}
			if !found {
				missing = append(missing, fmt.Sprintf("the checks did not report %q", want))
			}
		}
		if len(missing) > 0 {
			return append(missing, "reported:\n"+strings.Join(problems, "\n")), ""
		}
		return nil, fmt.Sprintf("the checks report the %d expected problems (%d in all)", len(tc.ExpectProblems), len(problems))
	}
	kinds := map[string]int{}
	for _, m := range res.Manifests {
		kinds[mstr(m.Object, "kind")]++
	}
	var parts []string
	for k, n := range kinds {
		parts = append(parts, fmt.Sprintf("%d %s", n, k))
	}
	sort.Strings(parts)
	return problems, fmt.Sprintf("%d objects (%s), %d asserts", len(res.Manifests), strings.Join(parts, ", "), len(tc.Asserts))
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func lastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
