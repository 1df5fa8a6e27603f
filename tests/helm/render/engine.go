// The rendering half of the chart test: Helm 3's template engine re-implemented on Go's
// text/template and sprig v3, following helm.sh/helm/v3 pkg/engine, pkg/chartutil and
// pkg/releaseutil. What differs from real Helm is listed in tests/helm/README.md.
package main

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"text/template"

	sprig "github.com/Masterminds/sprig"
	yamlv2 "gopkg.in/yaml.v2"
)

// ---- YAML as Helm reads and writes it (sigs.k8s.io/yaml over gopkg.in/yaml.v2) --------------

// yamlToJSONValue converts what yaml.v2 decoded into what sigs.k8s.io/yaml.Unmarshal gives:
// string keys, and every number a float64 (the value goes through JSON).
func yamlToJSONValue(v interface{}) (interface{}, error) {
	conv, err := stringKeys(v)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(conv)
	if err != nil {
		return nil, err
	}
	var out interface{}
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, err
	}
	return out, nil
}

func stringKeys(v interface{}) (interface{}, error) {
	switch t := v.(type) {
	case map[interface{}]interface{}:
		m := make(map[string]interface{}, len(t))
		for k, val := range t {
			var ks string
			switch kk := k.(type) {
			case string:
				ks = kk
			case int, int64, float64, bool:
				ks = fmt.Sprint(kk)
			default:
				return nil, fmt.Errorf("unsupported map key %#v", k)
			}
			c, err := stringKeys(val)
			if err != nil {
				return nil, err
			}
			m[ks] = c
		}
		return m, nil
	case []interface{}:
		out := make([]interface{}, len(t))
		for i, e := range t {
			c, err := stringKeys(e)
			if err != nil {
				return nil, err
			}
			out[i] = c
		}
		return out, nil
	default:
		return v, nil
	}
}

// sigsUnmarshal is sigs.k8s.io/yaml.Unmarshal into an interface{}.
func sigsUnmarshal(data []byte) (interface{}, error) {
	var raw interface{}
	if err := yamlv2.Unmarshal(data, &raw); err != nil {
		return nil, err
	}
	return yamlToJSONValue(raw)
}

// sigsUnmarshalMap reads a YAML document that must be a mapping (or empty).
func sigsUnmarshalMap(data []byte) (map[string]interface{}, error) {
	v, err := sigsUnmarshal(data)
	if err != nil {
		return nil, err
	}
	if v == nil {
		return map[string]interface{}{}, nil
	}
	m, ok := v.(map[string]interface{})
	if !ok {
		return nil, fmt.Errorf("error unmarshaling JSON: json: cannot unmarshal %T into Go value of type map[string]interface {}", v)
	}
	return m, nil
}

// sigsMarshal is sigs.k8s.io/yaml.Marshal: JSON first, then YAML (yaml.v2, keys sorted).
func sigsMarshal(v interface{}) ([]byte, error) {
	j, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var obj interface{}
	if err := yamlv2.Unmarshal(j, &obj); err != nil {
		return nil, err
	}
	return yamlv2.Marshal(obj)
}

// ---- The chart -------------------------------------------------------------------------------

// Metadata is chart.Metadata: the fields .Chart offers templates.
type Metadata struct {
	Name         string                   `json:"name,omitempty"`
	Home         string                   `json:"home,omitempty"`
	Sources      []string                 `json:"sources,omitempty"`
	Version      string                   `json:"version,omitempty"`
	Description  string                   `json:"description,omitempty"`
	Keywords     []string                 `json:"keywords,omitempty"`
	Maintainers  []map[string]interface{} `json:"maintainers,omitempty"`
	Icon         string                   `json:"icon,omitempty"`
	APIVersion   string                   `json:"apiVersion,omitempty"`
	Condition    string                   `json:"condition,omitempty"`
	Tags         string                   `json:"tags,omitempty"`
	AppVersion   string                   `json:"appVersion,omitempty"`
	Deprecated   bool                     `json:"deprecated,omitempty"`
	Annotations  map[string]string        `json:"annotations,omitempty"`
	KubeVersion  string                   `json:"kubeVersion,omitempty"`
	Dependencies []map[string]interface{} `json:"dependencies,omitempty"`
	Type         string                   `json:"type,omitempty"`
}

type file struct {
	Name string
	Data []byte
}

type Chart struct {
	Dir       string
	Metadata  *Metadata
	Values    map[string]interface{}
	Schema    []byte
	Templates []file
	Files     []file
}

func loadChart(dir string) (*Chart, error) {
	c := &Chart{Dir: dir}
	meta, err := os.ReadFile(filepath.Join(dir, "Chart.yaml"))
	if err != nil {
		return nil, err
	}
	mv, err := sigsUnmarshalMap(meta)
	if err != nil {
		return nil, fmt.Errorf("Chart.yaml: %v", err)
	}
	b, _ := json.Marshal(mv)
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	c.Metadata = &Metadata{}
	if err := dec.Decode(c.Metadata); err != nil {
		return nil, fmt.Errorf("Chart.yaml: %v", err)
	}
	vals, err := os.ReadFile(filepath.Join(dir, "values.yaml"))
	if err != nil {
		return nil, err
	}
	if c.Values, err = sigsUnmarshalMap(vals); err != nil {
		return nil, fmt.Errorf("values.yaml: %v", err)
	}
	if s, err := os.ReadFile(filepath.Join(dir, "values.schema.json")); err == nil {
		c.Schema = s
	}
	err = filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if info.IsDir() {
			if rel == "charts" {
				return fmt.Errorf("subcharts (charts/) are not supported by this renderer")
			}
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		switch {
		case strings.HasPrefix(rel, "templates/"):
			c.Templates = append(c.Templates, file{rel, data})
		case rel == "Chart.yaml" || rel == "values.yaml" || rel == "values.schema.json" || rel == ".helmignore":
		default:
			c.Files = append(c.Files, file{rel, data})
		}
		return nil
	})
	return c, err
}

// ---- Values ----------------------------------------------------------------------------------

// mergeMaps is pkg/cli/values mergeMaps: later -f files win, maps merge.
func mergeMaps(a, b map[string]interface{}) map[string]interface{} {
	out := make(map[string]interface{}, len(a))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		if vm, ok := v.(map[string]interface{}); ok {
			if bv, ok := out[k]; ok {
				if bm, ok := bv.(map[string]interface{}); ok {
					out[k] = mergeMaps(bm, vm)
					continue
				}
			}
		}
		out[k] = v
	}
	return out
}

func deepCopy(v interface{}) interface{} {
	switch t := v.(type) {
	case map[string]interface{}:
		m := make(map[string]interface{}, len(t))
		for k, e := range t {
			m[k] = deepCopy(e)
		}
		return m
	case []interface{}:
		l := make([]interface{}, len(t))
		for i, e := range t {
			l[i] = deepCopy(e)
		}
		return l
	default:
		return v
	}
}

// coalesceValues is pkg/chartutil coalesceValues + CoalesceTables: the chart's defaults
// under the user's values; a user null deletes the key.
func coalesceValues(defaults, user map[string]interface{}) map[string]interface{} {
	v := deepCopy(user).(map[string]interface{})
	for key, val := range deepCopy(defaults).(map[string]interface{}) {
		if value, ok := v[key]; ok {
			if value == nil {
				delete(v, key)
			} else if dest, ok := value.(map[string]interface{}); ok {
				if src, ok := val.(map[string]interface{}); ok {
					coalesceTables(dest, src)
				} else if val != nil {
					warnf("warning: skipped value for %s: Not a table.", key)
				}
			}
		} else {
			v[key] = val
		}
	}
	return v
}

func coalesceTables(dst, src map[string]interface{}) {
	for key, val := range src {
		dv, ok := dst[key]
		if ok && dv == nil {
			delete(dst, key)
		} else if !ok {
			dst[key] = val
		} else if sm, ok := val.(map[string]interface{}); ok {
			if dm, ok := dv.(map[string]interface{}); ok {
				coalesceTables(dm, sm)
			} else {
				warnf("warning: cannot overwrite table with non table for %s (%v)", key, val)
			}
		} else if _, ok := dv.(map[string]interface{}); ok && val != nil {
			warnf("warning: destination for %s is a table. Ignoring non-table value %v", key, val)
		}
	}
}

var warnings []string

func warnf(format string, args ...interface{}) {
	warnings = append(warnings, fmt.Sprintf(format, args...))
}

// ---- Render context ----------------------------------------------------------------------------

// Values is chartutil.Values.
type Values map[string]interface{}

// PathValue is chartutil.Values.PathValue for the paths tpl needs ("Template.Name").
func (v Values) PathValue(p string) (interface{}, error) {
	var cur interface{} = map[string]interface{}(v)
	for _, part := range strings.Split(p, ".") {
		var m map[string]interface{}
		switch t := cur.(type) {
		case map[string]interface{}:
			m = t
		case Values:
			m = t
		default:
			return nil, fmt.Errorf("%v is not a table", p)
		}
		var ok bool
		if cur, ok = m[part]; !ok {
			return nil, fmt.Errorf("%v is not a value", p)
		}
	}
	return cur, nil
}

// VersionSet is chartutil.VersionSet.
type VersionSet []string

func (v VersionSet) Has(apiVersion string) bool {
	for _, x := range v {
		if x == apiVersion {
			return true
		}
	}
	return false
}

type KubeVersion struct {
	Version    string
	Major      string
	Minor      string
	GitVersion string // deprecated in Helm, kept
}

func (kv *KubeVersion) String() string { return kv.Version }

type HelmVersion struct {
	Version      string
	GitCommit    string
	GitTreeState string
	GoVersion    string
}

type Capabilities struct {
	APIVersions VersionSet
	KubeVersion KubeVersion
	HelmVersion HelmVersion
}

// defaultAPIVersions: what `helm template` assumes without a cluster (the built-in
// Kubernetes groups), plus what --api-versions adds.
var defaultAPIVersions = []string{
	"v1", "apps/v1", "batch/v1", "policy/v1", "autoscaling/v1", "autoscaling/v2",
	"networking.k8s.io/v1", "rbac.authorization.k8s.io/v1", "storage.k8s.io/v1",
	"apiextensions.k8s.io/v1", "admissionregistration.k8s.io/v1", "coordination.k8s.io/v1",
	"discovery.k8s.io/v1", "scheduling.k8s.io/v1", "certificates.k8s.io/v1",
}

// Files is the .Files object (pkg/engine/files.go), the subset charts use.
type Files map[string][]byte

func (f Files) GetBytes(name string) []byte { return f[name] }
func (f Files) Get(name string) string      { return string(f[name]) }
func (f Files) Lines(p string) []string {
	if f[p] == nil {
		return []string{}
	}
	s := string(f[p])
	if s[len(s)-1] == '\n' {
		s = s[:len(s)-1]
	}
	return strings.Split(s, "\n")
}
func (f Files) Glob(pattern string) Files {
	out := Files{}
	for name, data := range f {
		if ok, _ := path.Match(pattern, name); ok {
			out[name] = data
		}
	}
	return out
}
func (f Files) AsConfig() string {
	m := map[string]string{}
	for k, v := range f {
		m[path.Base(k)] = string(v)
	}
	b, _ := sigsMarshal(m)
	return strings.TrimSuffix(string(b), "\n")
}
func (f Files) AsSecrets() string {
	m := map[string]string{}
	for k, v := range f {
		m[path.Base(k)] = base64.StdEncoding.EncodeToString(v)
	}
	b, _ := sigsMarshal(m)
	return strings.TrimSuffix(string(b), "\n")
}

type ReleaseOptions struct {
	Name      string
	Namespace string
	Revision  int
	IsInstall bool
	IsUpgrade bool
}

// ---- The engine (pkg/engine/engine.go) -----------------------------------------------------

type renderable struct {
	tpl      string
	vals     Values
	basePath string
}

const (
	warnStartDelim   = "HELM_ERR_START"
	warnEndDelim     = "HELM_ERR_END"
	recursionMaxNums = 1000
)

var warnRegex = regexp.MustCompile(warnStartDelim + `((?s).*)` + warnEndDelim)

func warnWrap(warn string) string { return warnStartDelim + warn + warnEndDelim }

type engine struct{}

func (e engine) initFunMap(t *template.Template, referenceTpls map[string]renderable) {
	funcMap := helmFuncMap()
	includedNames := make(map[string]int)
	funcMap["include"] = func(name string, data interface{}) (string, error) {
		var buf strings.Builder
		if v, ok := includedNames[name]; ok {
			if v > recursionMaxNums {
				return "", fmt.Errorf("rendering template has a nested reference name: %s: unable to execute template", name)
			}
			includedNames[name]++
		} else {
			includedNames[name] = 1
		}
		err := t.ExecuteTemplate(&buf, name, data)
		includedNames[name]--
		return buf.String(), err
	}
	funcMap["tpl"] = func(tpl string, vals Values) (string, error) {
		basePath, err := vals.PathValue("Template.BasePath")
		if err != nil {
			return "", fmt.Errorf("cannot retrieve Template.Basepath from values inside tpl function: %s: %v", tpl, err)
		}
		templateName, err := vals.PathValue("Template.Name")
		if err != nil {
			return "", fmt.Errorf("cannot retrieve Template.Name from values inside tpl function: %s: %v", tpl, err)
		}
		templates := map[string]renderable{
			templateName.(string): {tpl: tpl, vals: vals, basePath: basePath.(string)},
		}
		result, err := e.renderWithReferences(templates, referenceTpls)
		if err != nil {
			return "", fmt.Errorf("error during tpl function execution for %q: %v", tpl, err)
		}
		return result[templateName.(string)], nil
	}
	funcMap["required"] = func(warn string, val interface{}) (interface{}, error) {
		if val == nil {
			return val, errors.New(warnWrap(warn))
		} else if s, ok := val.(string); ok && s == "" {
			return val, errors.New(warnWrap(warn))
		}
		return val, nil
	}
	t.Funcs(funcMap)
}

func (e engine) render(tpls map[string]renderable) (map[string]string, error) {
	return e.renderWithReferences(tpls, tpls)
}

func (e engine) renderWithReferences(tpls, referenceTpls map[string]renderable) (rendered map[string]string, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("rendering template failed: %v", r)
		}
	}()
	t := template.New("gotpl")
	t.Option("missingkey=zero")
	e.initFunMap(t, referenceTpls)
	keys := sortTemplates(tpls)
	referenceKeys := sortTemplates(referenceTpls)
	for _, filename := range keys {
		if _, err := t.New(filename).Parse(tpls[filename].tpl); err != nil {
			return map[string]string{}, cleanupParseError(filename, err)
		}
	}
	for _, filename := range referenceKeys {
		if t.Lookup(filename) == nil {
			if _, err := t.New(filename).Parse(referenceTpls[filename].tpl); err != nil {
				return map[string]string{}, cleanupParseError(filename, err)
			}
		}
	}
	rendered = make(map[string]string, len(keys))
	for _, filename := range keys {
		if strings.HasPrefix(path.Base(filename), "_") {
			continue
		}
		vals := tpls[filename].vals
		vals["Template"] = map[string]interface{}{"Name": filename, "BasePath": tpls[filename].basePath}
		var buf strings.Builder
		if err := t.ExecuteTemplate(&buf, filename, vals); err != nil {
			return map[string]string{}, cleanupExecError(filename, err)
		}
		rendered[filename] = strings.ReplaceAll(buf.String(), "<no value>", "")
	}
	return rendered, nil
}

func cleanupParseError(filename string, err error) error {
	tokens := strings.Split(err.Error(), ": ")
	if len(tokens) == 1 {
		return fmt.Errorf("parse error in (%s): %s", filename, err)
	}
	return fmt.Errorf("parse error at (%s): %s", tokens[1], tokens[len(tokens)-1])
}

func cleanupExecError(filename string, err error) error {
	if _, ok := err.(template.ExecError); !ok {
		return err
	}
	tokens := strings.SplitN(err.Error(), ": ", 3)
	if len(tokens) != 3 {
		return fmt.Errorf("execution error in (%s): %s", filename, err)
	}
	if parts := warnRegex.FindStringSubmatch(tokens[2]); len(parts) >= 2 {
		return fmt.Errorf("execution error at (%s): %s", tokens[1], parts[1])
	}
	return err
}

func sortTemplates(tpls map[string]renderable) []string {
	keys := make([]string, 0, len(tpls))
	for k := range tpls {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { // sort.Reverse(byPathLen)
		a, b := keys[j], keys[i]
		ca, cb := strings.Count(a, "/"), strings.Count(b, "/")
		if ca == cb {
			return a < b
		}
		return ca < cb
	})
	return keys
}

// ---- Functions (pkg/engine/funcs.go) ------------------------------------------------------

func helmFuncMap() template.FuncMap {
	f := sprig.TxtFuncMap()
	delete(f, "env")
	delete(f, "expandenv")
	extra := template.FuncMap{
		"toToml": func(v interface{}) string { return "toToml is not supported by the render test" },
		"fromToml": func(s string) map[string]interface{} {
			return map[string]interface{}{"Error": "fromToml is not supported by the render test"}
		},
		"toYaml":        toYAML,
		"mustToYaml":    mustToYAML,
		"toYamlPretty":  toYAML,
		"fromYaml":      fromYAML,
		"fromYamlArray": fromYAMLArray,
		"toJson":        toJSON,
		"mustToJson":    mustToJSON,
		"fromJson":      fromJSON,
		"fromJsonArray": fromJSONArray,
		// helm template (no cluster): lookup finds nothing.
		"lookup": func(apiversion, resource, namespace, name string) (map[string]interface{}, error) {
			return map[string]interface{}{}, nil
		},
		"include":  func(string, interface{}) string { return "not implemented" },
		"tpl":      func(string, interface{}) interface{} { return "not implemented" },
		"required": func(string, interface{}) (interface{}, error) { return "not implemented", nil },
	}
	for k, v := range extra {
		f[k] = v
	}
	return f
}

func toYAML(v interface{}) string {
	data, err := sigsMarshal(v)
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(string(data), "\n")
}

func mustToYAML(v interface{}) (string, error) {
	data, err := sigsMarshal(v)
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(string(data), "\n"), nil
}

func fromYAML(str string) map[string]interface{} {
	m, err := sigsUnmarshalMap([]byte(str))
	if err != nil {
		return map[string]interface{}{"Error": err.Error()}
	}
	return m
}

func fromYAMLArray(str string) []interface{} {
	v, err := sigsUnmarshal([]byte(str))
	if err != nil {
		return []interface{}{err.Error()}
	}
	a, ok := v.([]interface{})
	if !ok {
		return []interface{}{"error unmarshaling JSON: not an array"}
	}
	return a
}

func toJSON(v interface{}) string {
	data, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(data)
}

func mustToJSON(v interface{}) (string, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	return string(data), nil
}

func fromJSON(str string) map[string]interface{} {
	m := make(map[string]interface{})
	if err := json.Unmarshal([]byte(str), &m); err != nil {
		m["Error"] = err.Error()
	}
	return m
}

func fromJSONArray(str string) []interface{} {
	a := []interface{}{}
	if err := json.Unmarshal([]byte(str), &a); err != nil {
		a = []interface{}{err.Error()}
	}
	return a
}

// ---- Rendering a release (pkg/action: template/install) -----------------------------------------

type Manifest struct {
	Source string                 // template path
	Text   string                 // the document as rendered
	Object map[string]interface{} // parsed (sigs semantics)
}

type RenderResult struct {
	Values    map[string]interface{}
	Manifests []Manifest
	Notes     string
	Files     map[string]string
}

// renderRelease validates the coalesced values against the schema, renders every template
// and splits the output into documents, as `helm template` / `helm install` do.
func renderRelease(c *Chart, userValues map[string]interface{}, rel ReleaseOptions, caps *Capabilities) (*RenderResult, error) {
	if err := checkKubeVersion(c.Metadata.KubeVersion, caps.KubeVersion.Version); err != nil {
		return nil, err
	}
	vals := coalesceValues(c.Values, userValues)
	if c.Schema != nil {
		if err := validateAgainstSchema(vals, c.Schema); err != nil {
			return nil, fmt.Errorf("values don't meet the specifications of the schema(s) in the following chart(s):\n%s:\n%s", c.Metadata.Name, err.Error())
		}
	}
	files := Files{}
	for _, f := range c.Files {
		files[f.Name] = f.Data
	}
	top := Values{
		"Chart":        c.Metadata,
		"Files":        files,
		"Release":      map[string]interface{}{"Name": rel.Name, "Namespace": rel.Namespace, "IsUpgrade": rel.IsUpgrade, "IsInstall": rel.IsInstall, "Revision": rel.Revision, "Service": "Helm"},
		"Capabilities": caps,
		"Values":       vals,
	}
	tpls := map[string]renderable{}
	for _, t := range c.Templates {
		tpls[path.Join(c.Metadata.Name, t.Name)] = renderable{tpl: string(t.Data), vals: top, basePath: path.Join(c.Metadata.Name, "templates")}
	}
	out, err := engine{}.render(tpls)
	if err != nil {
		return nil, err
	}
	res := &RenderResult{Values: vals, Files: out}
	names := make([]string, 0, len(out))
	for k := range out {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, name := range names {
		content := out[name]
		if strings.HasSuffix(name, "NOTES.txt") {
			res.Notes = content
			continue
		}
		if strings.TrimSpace(content) == "" {
			continue
		}
		for _, doc := range splitManifests(content) {
			obj, err := parseManifest(doc)
			if err != nil {
				return nil, fmt.Errorf("YAML parse error on %s: %v", name, err)
			}
			if obj == nil {
				continue
			}
			res.Manifests = append(res.Manifests, Manifest{Source: name, Text: doc, Object: obj})
		}
	}
	return res, nil
}

var sep = regexp.MustCompile("(?:^|\\s*\n)---\\s*")

// splitManifests is releaseutil.SplitManifests (documents kept in order).
func splitManifests(bigFile string) []string {
	bigFileTmp := strings.TrimSpace(bigFile)
	docs := sep.Split(bigFileTmp, -1)
	var out []string
	for _, d := range docs {
		if d == "" {
			continue
		}
		d = strings.TrimSpace(d)
		out = append(out, d+"\n")
	}
	return out
}
