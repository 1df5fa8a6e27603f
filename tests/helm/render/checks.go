// The checks on a rendered release: what `kubectl apply` and the controllers would refuse
// or silently get wrong (names, label selectors, ports, probes, volumes, references), and the
// chart's own rules (restricted security context, hooks, resource requests).
package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	yamlv3 "gopkg.in/yaml.v3"
)

// parseManifest parses one rendered document: yaml.v3 first (it refuses duplicate keys,
// which the API server's strict decoding refuses too), then as Kubernetes reads it.
func parseManifest(doc string) (map[string]interface{}, error) {
	var node yamlv3.Node
	if err := yamlv3.Unmarshal([]byte(doc), &node); err != nil {
		return nil, err
	}
	v, err := sigsUnmarshal([]byte(doc))
	if err != nil {
		return nil, err
	}
	if v == nil {
		return nil, nil // only comments: kubectl and Helm skip such a document
	}
	m, ok := v.(map[string]interface{})
	if !ok {
		return nil, fmt.Errorf("document is a %T, not an object", v)
	}
	return m, nil
}

// ---- Accessors ------------------------------------------------------------------------------

func mget(v interface{}, keys ...string) interface{} {
	for _, k := range keys {
		m, ok := v.(map[string]interface{})
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func mstr(v interface{}, keys ...string) string {
	s, _ := mget(v, keys...).(string)
	return s
}

func mmap(v interface{}, keys ...string) map[string]interface{} {
	m, _ := mget(v, keys...).(map[string]interface{})
	return m
}

func mlist(v interface{}, keys ...string) []interface{} {
	l, _ := mget(v, keys...).([]interface{})
	return l
}

func kindName(o map[string]interface{}) string {
	return fmt.Sprintf("%s/%s", mstr(o, "kind"), mstr(o, "metadata", "name"))
}

// matches: every selector label is on the object with the same value (non-empty selector).
func matches(selector, labels map[string]interface{}) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if lv, ok := labels[k]; !ok || lv != v {
			return false
		}
	}
	return true
}

// ---- Checks ---------------------------------------------------------------------------------

type checker struct {
	res      *RenderResult
	rel      ReleaseOptions
	external map[string]bool // Secrets the user provides (existingSecret, tls.existingSecret)
	problems []string
}

func (c *checker) failf(format string, args ...interface{}) {
	c.problems = append(c.problems, fmt.Sprintf(format, args...))
}

var (
	dns1123Subdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	dns1035Label     = regexp.MustCompile(`^[a-z]([-a-z0-9]*[a-z0-9])?$`)
	labelValue       = regexp.MustCompile(`^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$`)
	labelKeyName     = regexp.MustCompile(`^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$`)
	portName         = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
)

func (c *checker) objects(kind string) []map[string]interface{} {
	var out []map[string]interface{}
	for _, m := range c.res.Manifests {
		if mstr(m.Object, "kind") == kind {
			out = append(out, m.Object)
		}
	}
	return out
}

func (c *checker) find(kind, name string) map[string]interface{} {
	for _, o := range c.objects(kind) {
		if mstr(o, "metadata", "name") == name {
			return o
		}
	}
	return nil
}

func isHook(o map[string]interface{}) bool {
	return mstr(o, "metadata", "annotations", "helm.sh/hook") != ""
}

func hookWeight(o map[string]interface{}) int {
	w, _ := strconv.Atoi(mstr(o, "metadata", "annotations", "helm.sh/hook-weight"))
	return w
}

func runChecks(res *RenderResult, rel ReleaseOptions) []string {
	c := &checker{res: res, rel: rel, external: map[string]bool{}}
	for _, p := range [][]string{{"existingSecret"}, {"tls", "existingSecret"}} {
		if s := mstr(res.Values, p...); s != "" {
			c.external[s] = true
		}
	}
	c.checkMetadata()
	for _, d := range c.objects("Deployment") {
		c.checkWorkload(d, mmap(d, "spec", "template"))
		c.checkDeployment(d)
	}
	for _, j := range c.objects("Job") {
		c.checkWorkload(j, mmap(j, "spec", "template"))
		c.checkJob(j)
	}
	c.checkServices()
	c.checkPDBs()
	c.checkHPAs()
	c.checkServiceMonitors()
	c.checkNetworkPolicies()
	c.checkConfigData()
	if strings.TrimSpace(res.Notes) == "" {
		c.failf("NOTES.txt renders empty")
	}
	return c.problems
}

func (c *checker) checkMetadata() {
	seen := map[string]string{}
	for _, m := range c.res.Manifests {
		o := m.Object
		kn := kindName(o)
		if mstr(o, "apiVersion") == "" || mstr(o, "kind") == "" || mstr(o, "metadata", "name") == "" {
			c.failf("%s (%s): apiVersion, kind and metadata.name are required", kn, m.Source)
			continue
		}
		name := mstr(o, "metadata", "name")
		if len(name) > 253 || !dns1123Subdomain.MatchString(name) {
			c.failf("%s: name %q is not a DNS-1123 subdomain", kn, name)
		}
		if k := mstr(o, "kind"); (k == "Service" || k == "Deployment" || k == "Job") && (len(name) > 63 || !dns1035Label.MatchString(name)) {
			c.failf("%s: name %q must be a DNS-1035 label (63 characters at most)", kn, name)
		}
		key := mstr(o, "apiVersion") + " " + kn
		if prev, ok := seen[key]; ok {
			c.failf("%s rendered twice (%s and %s)", kn, prev, m.Source)
		}
		seen[key] = m.Source
		if ns := mstr(o, "metadata", "namespace"); ns != "" && ns != c.rel.Namespace && mstr(o, "kind") != "ServiceMonitor" {
			c.failf("%s: namespace %q is not the release's %q", kn, ns, c.rel.Namespace)
		}
		c.checkLabelsAndAnnotations(kn+" metadata", mget(o, "metadata"))
		for _, l := range []string{"app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version",
			"app.kubernetes.io/managed-by", "app.kubernetes.io/component", "helm.sh/chart"} {
			if mstr(o, "metadata", "labels", l) == "" {
				c.failf("%s: standard label %s missing", kn, l)
			}
		}
		if mstr(o, "metadata", "labels", "app.kubernetes.io/managed-by") != "Helm" {
			c.failf("%s: app.kubernetes.io/managed-by must be Helm (.Release.Service)", kn)
		}
		if mstr(o, "metadata", "labels", "app.kubernetes.io/instance") != c.rel.Name {
			c.failf("%s: app.kubernetes.io/instance must be the release name", kn)
		}
	}
}

// checkLabelsAndAnnotations: label keys and values valid, every value a string (an unquoted
// number or boolean is refused by the API server).
func (c *checker) checkLabelsAndAnnotations(where string, meta interface{}) {
	for _, field := range []string{"labels", "annotations"} {
		raw := mget(meta, field)
		if raw == nil {
			continue
		}
		m, ok := raw.(map[string]interface{})
		if !ok {
			c.failf("%s.%s is not a map", where, field)
			continue
		}
		for k, v := range m {
			s, ok := v.(string)
			if !ok {
				c.failf("%s.%s[%s] = %v (%T): must be a string (quote it)", where, field, k, v, v)
				continue
			}
			name := k
			if i := strings.LastIndex(k, "/"); i >= 0 {
				if prefix := k[:i]; len(prefix) > 253 || !dns1123Subdomain.MatchString(prefix) {
					c.failf("%s.%s: key prefix %q invalid", where, field, prefix)
				}
				name = k[i+1:]
			}
			if len(name) > 63 || !labelKeyName.MatchString(name) {
				c.failf("%s.%s: key %q invalid", where, field, k)
			}
			if field == "labels" && (len(s) > 63 || !labelValue.MatchString(s)) {
				c.failf("%s.labels[%s] = %q: not a valid label value", where, k, s)
			}
		}
	}
}

type container struct {
	kind string // "container" or "initContainer"
	obj  map[string]interface{}
}

func podContainers(podSpec map[string]interface{}) []container {
	var out []container
	for _, x := range mlist(podSpec, "initContainers") {
		out = append(out, container{"initContainer", x.(map[string]interface{})})
	}
	for _, x := range mlist(podSpec, "containers") {
		out = append(out, container{"container", x.(map[string]interface{})})
	}
	return out
}

func boolAt(v interface{}, keys ...string) (bool, bool) {
	b, ok := mget(v, keys...).(bool)
	return b, ok
}

// checkWorkload: the pod template of a Deployment or Job.
func (c *checker) checkWorkload(owner, tmpl map[string]interface{}) {
	kn := kindName(owner)
	spec := mmap(tmpl, "spec")
	if spec == nil {
		c.failf("%s: no pod template spec", kn)
		return
	}
	c.checkLabelsAndAnnotations(kn+" pod template", mget(tmpl, "metadata"))
	for _, f := range []string{"hostNetwork", "hostPID", "hostIPC"} {
		if b, _ := boolAt(spec, f); b {
			c.failf("%s: %s is not allowed", kn, f)
		}
	}
	// Restricted pod security (Pod Security Standards "restricted").
	psc := mmap(spec, "securityContext")
	podNonRoot, _ := boolAt(psc, "runAsNonRoot")
	podSeccomp := mstr(psc, "seccompProfile", "type")
	if !podNonRoot {
		c.failf("%s: pod securityContext.runAsNonRoot must be true", kn)
	}
	if uid, ok := mget(psc, "runAsUser").(float64); ok && uid == 0 {
		c.failf("%s: pod runs as uid 0", kn)
	}
	volumes := map[string]map[string]interface{}{}
	for _, v := range mlist(spec, "volumes") {
		vm := v.(map[string]interface{})
		name := mstr(vm, "name")
		if _, dup := volumes[name]; dup {
			c.failf("%s: volume %q defined twice", kn, name)
		}
		volumes[name] = vm
		if mget(vm, "hostPath") != nil {
			c.failf("%s: hostPath volume %q is not allowed", kn, name)
		}
		if s := mstr(vm, "secret", "secretName"); s != "" {
			c.checkSecretRef(owner, fmt.Sprintf("volume %q", name), s, itemKeys(vm))
		}
		if s := mstr(vm, "configMap", "name"); s != "" {
			c.checkConfigMapRef(owner, fmt.Sprintf("volume %q", name), s, "")
		}
	}
	used := map[string]bool{}
	names := map[string]bool{}
	if len(mlist(spec, "containers")) == 0 {
		c.failf("%s: no containers", kn)
	}
	for _, ct := range podContainers(spec) {
		co := ct.obj
		cn := fmt.Sprintf("%s %s %q", kn, ct.kind, mstr(co, "name"))
		if names[mstr(co, "name")] {
			c.failf("%s: container name used twice", cn)
		}
		names[mstr(co, "name")] = true
		img := mstr(co, "image")
		if img == "" || (!strings.Contains(img, "@sha256:") && !strings.Contains(img[strings.LastIndex(img, "/")+1:], ":")) {
			c.failf("%s: image %q has no tag or digest", cn, img)
		} else if strings.HasSuffix(img, ":") {
			c.failf("%s: image %q has an empty tag", cn, img)
		}
		sc := mmap(co, "securityContext")
		if nr, ok := boolAt(sc, "runAsNonRoot"); (ok && !nr) || (!ok && !podNonRoot) {
			c.failf("%s: runAsNonRoot must be true", cn)
		}
		if b, ok := boolAt(sc, "readOnlyRootFilesystem"); !ok || !b {
			c.failf("%s: securityContext.readOnlyRootFilesystem must be true", cn)
		}
		if b, ok := boolAt(sc, "allowPrivilegeEscalation"); !ok || b {
			c.failf("%s: securityContext.allowPrivilegeEscalation must be false", cn)
		}
		if b, _ := boolAt(sc, "privileged"); b {
			c.failf("%s: privileged", cn)
		}
		drop := false
		for _, d := range mlist(sc, "capabilities", "drop") {
			if d == "ALL" {
				drop = true
			}
		}
		if !drop {
			c.failf("%s: securityContext.capabilities.drop must contain ALL", cn)
		}
		if len(mlist(sc, "capabilities", "add")) > 0 {
			c.failf("%s: capabilities.add is not allowed", cn)
		}
		if seccomp := mstr(sc, "seccompProfile", "type"); seccomp != "RuntimeDefault" && !(seccomp == "" && podSeccomp == "RuntimeDefault") {
			c.failf("%s: seccompProfile must be RuntimeDefault", cn)
		}
		for _, r := range []string{"cpu", "memory"} {
			if mget(co, "resources", "requests", r) == nil {
				c.failf("%s: resources.requests.%s not set", cn, r)
			}
		}
		// Ports.
		ports := map[string]bool{}
		for _, p := range mlist(co, "ports") {
			pm := p.(map[string]interface{})
			n := mstr(pm, "name")
			num, ok := pm["containerPort"].(float64)
			if !ok || num < 1 || num > 65535 || num != float64(int(num)) {
				c.failf("%s: containerPort %v invalid", cn, pm["containerPort"])
			}
			if n != "" {
				if len(n) > 15 || !portName.MatchString(n) {
					c.failf("%s: port name %q invalid (IANA_SVC_NAME, 15 characters)", cn, n)
				}
				if ports[n] {
					c.failf("%s: port name %q used twice", cn, n)
				}
				ports[n] = true
			}
			ports[strconv.Itoa(int(num))] = true
		}
		for _, probe := range []string{"livenessProbe", "readinessProbe", "startupProbe"} {
			pr := mmap(co, probe)
			if pr == nil {
				continue
			}
			if hg := mmap(pr, "httpGet"); hg != nil {
				if !ports[portKey(hg["port"])] {
					c.failf("%s: %s port %v is not a port of the container", cn, probe, hg["port"])
				}
				if !strings.HasPrefix(mstr(hg, "path"), "/") {
					c.failf("%s: %s path must start with /", cn, probe)
				}
			} else if g := mmap(pr, "grpc"); g != nil {
				if !ports[portKey(g["port"])] {
					c.failf("%s: %s port %v is not a port of the container", cn, probe, g["port"])
				}
			} else if mget(pr, "tcpSocket") == nil && mget(pr, "exec") == nil {
				c.failf("%s: %s has no handler", cn, probe)
			}
			if ct.kind == "initContainer" {
				c.failf("%s: init containers cannot have %s", cn, probe)
			}
		}
		// Volume mounts.
		paths := map[string]bool{}
		for _, vm := range mlist(co, "volumeMounts") {
			m := vm.(map[string]interface{})
			if _, ok := volumes[mstr(m, "name")]; !ok {
				c.failf("%s: volumeMount %q has no volume", cn, mstr(m, "name"))
			}
			used[mstr(m, "name")] = true
			p := mstr(m, "mountPath")
			if !strings.HasPrefix(p, "/") || paths[p] {
				c.failf("%s: mountPath %q invalid or used twice", cn, p)
			}
			paths[p] = true
		}
		// Environment references.
		envNames := map[string]bool{}
		for _, e := range mlist(co, "env") {
			em := e.(map[string]interface{})
			n := mstr(em, "name")
			if n == "" || envNames[n] {
				c.failf("%s: env %q empty or set twice", cn, n)
			}
			envNames[n] = true
			if v, ok := em["value"]; ok {
				if _, isStr := v.(string); !isStr {
					c.failf("%s: env %s value %v must be a string", cn, n, v)
				}
			}
			if ref := mmap(em, "valueFrom", "secretKeyRef"); ref != nil {
				c.checkSecretRef(owner, "env "+n, mstr(ref, "name"), []string{mstr(ref, "key")})
			}
			if ref := mmap(em, "valueFrom", "configMapKeyRef"); ref != nil {
				c.checkConfigMapRef(owner, "env "+n, mstr(ref, "name"), mstr(ref, "key"))
			}
		}
		for _, e := range mlist(co, "envFrom") {
			if n := mstr(e, "configMapRef", "name"); n != "" {
				c.checkConfigMapRef(owner, "envFrom", n, "")
			}
			if n := mstr(e, "secretRef", "name"); n != "" {
				c.checkSecretRef(owner, "envFrom", n, nil)
			}
		}
	}
	for name := range volumes {
		if !used[name] {
			c.failf("%s: volume %q is mounted by no container", kn, name)
		}
	}
}

func itemKeys(vol map[string]interface{}) []string {
	var keys []string
	for _, it := range mlist(vol, "secret", "items") {
		keys = append(keys, mstr(it, "key"))
	}
	return keys
}

func portKey(p interface{}) string {
	switch t := p.(type) {
	case float64:
		return strconv.Itoa(int(t))
	case string:
		return t
	}
	return fmt.Sprint(p)
}

// checkSecretRef: the Secret is rendered (with the keys) or provided by the user. A hook's
// pod may only use Secrets that exist when it runs: hooks of a lower weight, or the user's.
func (c *checker) checkSecretRef(owner map[string]interface{}, what, name string, keys []string) {
	kn := kindName(owner)
	s := c.find("Secret", name)
	if s == nil {
		if !c.external[name] {
			c.failf("%s: %s refers to Secret %q, neither rendered nor given as existingSecret", kn, what, name)
		}
		return
	}
	if isHook(owner) && (!isHook(s) || hookWeight(s) >= hookWeight(owner)) {
		c.failf("%s: %s uses Secret %q, which does not exist yet when this hook runs", kn, what, name)
	}
	if !isHook(owner) && isHook(s) {
		c.failf("%s: %s uses hook Secret %q (deleted after the hooks)", kn, what, name)
	}
	for _, k := range keys {
		if mget(s, "data", k) == nil && mget(s, "stringData", k) == nil {
			c.failf("%s: %s: Secret %q has no key %q", kn, what, name, k)
		}
	}
}

func (c *checker) checkConfigMapRef(owner map[string]interface{}, what, name, key string) {
	kn := kindName(owner)
	cm := c.find("ConfigMap", name)
	if cm == nil {
		c.failf("%s: %s refers to ConfigMap %q, not rendered", kn, what, name)
		return
	}
	if isHook(owner) && !isHook(cm) {
		c.failf("%s: %s uses ConfigMap %q, which does not exist yet when this hook runs", kn, what, name)
	}
	if key != "" && mget(cm, "data", key) == nil {
		c.failf("%s: %s: ConfigMap %q has no key %q", kn, what, name, key)
	}
}

func (c *checker) podLabels(d map[string]interface{}) map[string]interface{} {
	return mmap(d, "spec", "template", "metadata", "labels")
}

func (c *checker) serverDeployments() []map[string]interface{} { return c.objects("Deployment") }

func (c *checker) checkDeployment(d map[string]interface{}) {
	kn := kindName(d)
	sel := mmap(d, "spec", "selector", "matchLabels")
	if !matches(sel, c.podLabels(d)) {
		c.failf("%s: selector %v does not match the pod template labels %v", kn, sel, c.podLabels(d))
	}
	if mget(d, "spec", "selector", "matchExpressions") != nil {
		c.failf("%s: use matchLabels only", kn)
	}
	hpa := len(c.objects("HorizontalPodAutoscaler")) > 0
	if r := mget(d, "spec", "replicas"); hpa && r != nil {
		c.failf("%s: spec.replicas set while an HPA scales it (every upgrade would reset the replicas)", kn)
	} else if !hpa && r == nil {
		c.failf("%s: spec.replicas missing", kn)
	}
	if t := mstr(d, "spec", "strategy", "type"); t != "RollingUpdate" {
		c.failf("%s: strategy %q, want RollingUpdate", kn, t)
	}
	if mstr(d, "spec", "template", "spec", "restartPolicy") != "" && mstr(d, "spec", "template", "spec", "restartPolicy") != "Always" {
		c.failf("%s: restartPolicy must be Always", kn)
	}
	// The server container: args start with "serve".
	spec := mmap(d, "spec", "template", "spec")
	var server map[string]interface{}
	for _, x := range mlist(spec, "containers") {
		if a := mlist(x, "args"); len(a) > 0 && a[0] == "serve" {
			server = x.(map[string]interface{})
		}
	}
	if server == nil {
		c.failf("%s: no container runs `serve`", kn)
		return
	}
	for _, p := range []string{"livenessProbe", "readinessProbe"} {
		if mget(server, p) == nil {
			c.failf("%s: the server has no %s", kn, p)
		}
	}
	if mstr(server, "livenessProbe", "httpGet", "path") != "" && mstr(server, "livenessProbe", "httpGet", "path") != "/healthz" {
		c.failf("%s: liveness must be /healthz (a database outage must not restart the server)", kn)
	}
	if p := mstr(server, "readinessProbe", "httpGet", "path"); p != "" && p != "/readyz" {
		c.failf("%s: readiness must be /readyz", kn)
	}
	grace := 10 * time.Second // the server's default --shutdown_grace
	for _, a := range mlist(server, "args") {
		if s, ok := a.(string); ok && strings.HasPrefix(s, "--shutdown_grace=") {
			g, err := time.ParseDuration(strings.TrimPrefix(s, "--shutdown_grace="))
			if err != nil {
				c.failf("%s: %s: %v", kn, s, err)
			}
			grace = g
		}
	}
	tgp, ok := mget(spec, "terminationGracePeriodSeconds").(float64)
	if !ok {
		tgp = 30
	}
	if time.Duration(tgp)*time.Second <= grace {
		c.failf("%s: terminationGracePeriodSeconds %v must exceed --shutdown_grace %v", kn, tgp, grace)
	}
	// The config checksum is the rendered ConfigMap's (pods roll when it changes).
	if cm, ok := c.res.Files[c.templatePath("configmap.yaml")]; ok {
		want := fmt.Sprintf("%x", sha256.Sum256([]byte(cm)))
		if got := mstr(d, "spec", "template", "metadata", "annotations", "checksum/config"); got != want {
			c.failf("%s: checksum/config %q is not the ConfigMap's sha256 %q", kn, got, want)
		}
	}
	if len(c.objects("Secret")) > 0 {
		if s, ok := c.res.Files[c.templatePath("secret.yaml")]; ok && strings.TrimSpace(s) != "" {
			want := fmt.Sprintf("%x", sha256.Sum256([]byte(s)))
			if got := mstr(d, "spec", "template", "metadata", "annotations", "checksum/secret"); got != want {
				c.failf("%s: checksum/secret %q is not the Secret's sha256", kn, got)
			}
		}
	}
	if sa := mstr(spec, "serviceAccountName"); sa != "" && sa != "default" && c.find("ServiceAccount", sa) == nil {
		c.failf("%s: service account %q is not rendered", kn, sa)
	}
}

func (c *checker) templatePath(name string) string {
	for f := range c.res.Files {
		if strings.HasSuffix(f, "/templates/"+name) {
			return f
		}
	}
	return ""
}

func (c *checker) checkJob(j map[string]interface{}) {
	kn := kindName(j)
	spec := mmap(j, "spec", "template", "spec")
	if rp := mstr(spec, "restartPolicy"); rp != "Never" && rp != "OnFailure" {
		c.failf("%s: restartPolicy must be Never or OnFailure", kn)
	}
	args := mlist(spec, "containers")
	if len(args) == 0 {
		return
	}
	if a := mlist(args[0], "args"); len(a) > 0 && a[0] == "migrate" {
		hooks := strings.Split(mstr(j, "metadata", "annotations", "helm.sh/hook"), ",")
		policies := strings.Split(mstr(j, "metadata", "annotations", "helm.sh/hook-delete-policy"), ",")
		for _, want := range []string{"pre-install", "pre-upgrade"} {
			if !contains(hooks, want) {
				c.failf("%s: helm.sh/hook must include %s (got %v)", kn, want, hooks)
			}
		}
		for _, want := range []string{"before-hook-creation", "hook-succeeded"} {
			if !contains(policies, want) {
				c.failf("%s: helm.sh/hook-delete-policy must include %s (got %v)", kn, want, policies)
			}
		}
		if sa := mstr(spec, "serviceAccountName"); sa != "" {
			if s := c.find("ServiceAccount", sa); s != nil && !isHook(s) {
				c.failf("%s: service account %q does not exist yet when pre-install hooks run", kn, sa)
			}
		}
	} else {
		c.failf("%s: a Job that does not run `migrate`", kn)
	}
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if strings.TrimSpace(x) == s {
			return true
		}
	}
	return false
}

// containerPorts of the Deployments' containers whose pods carry these labels.
func (c *checker) selectedPods(selector map[string]interface{}) []map[string]interface{} {
	var out []map[string]interface{}
	for _, d := range c.serverDeployments() {
		if matches(selector, c.podLabels(d)) {
			out = append(out, d)
		}
	}
	return out
}

func podPorts(d map[string]interface{}) map[string]bool {
	ports := map[string]bool{}
	for _, x := range mlist(d, "spec", "template", "spec", "containers") {
		for _, p := range mlist(x, "ports") {
			ports[mstr(p, "name")] = true
			ports[portKey(mget(p, "containerPort"))] = true
		}
	}
	return ports
}

func (c *checker) checkServices() {
	for _, s := range c.objects("Service") {
		kn := kindName(s)
		sel := mmap(s, "spec", "selector")
		pods := c.selectedPods(sel)
		if len(pods) != 1 {
			c.failf("%s: selector %v selects %d Deployments' pods, want 1", kn, sel, len(pods))
			continue
		}
		ports := podPorts(pods[0])
		names := map[string]bool{}
		for _, p := range mlist(s, "spec", "ports") {
			pm := p.(map[string]interface{})
			tp := pm["targetPort"]
			if tp == nil {
				tp = pm["port"]
			}
			if !ports[portKey(tp)] {
				c.failf("%s: targetPort %v is not a container port of %s", kn, tp, kindName(pods[0]))
			}
			n := mstr(pm, "name")
			if names[n] {
				c.failf("%s: port name %q used twice", kn, n)
			}
			names[n] = true
			if np, ok := pm["nodePort"]; ok && mstr(s, "spec", "type") == "ClusterIP" {
				c.failf("%s: nodePort %v on a ClusterIP Service", kn, np)
			}
		}
		if t := mstr(s, "spec", "type"); t != "ClusterIP" && t != "NodePort" && t != "LoadBalancer" {
			c.failf("%s: type %q", kn, t)
		}
	}
}

func (c *checker) checkPDBs() {
	for _, p := range c.objects("PodDisruptionBudget") {
		kn := kindName(p)
		if len(c.selectedPods(mmap(p, "spec", "selector", "matchLabels"))) != 1 {
			c.failf("%s: selector does not select the server pods", kn)
		}
		_, min := mmap(p, "spec")["minAvailable"]
		_, max := mmap(p, "spec")["maxUnavailable"]
		if min == max {
			c.failf("%s: exactly one of minAvailable and maxUnavailable", kn)
		}
	}
}

func (c *checker) checkHPAs() {
	for _, h := range c.objects("HorizontalPodAutoscaler") {
		kn := kindName(h)
		ref := mmap(h, "spec", "scaleTargetRef")
		d := c.find(mstr(ref, "kind"), mstr(ref, "name"))
		if d == nil || mstr(ref, "apiVersion") != mstr(d, "apiVersion") {
			c.failf("%s: scaleTargetRef %v is not a rendered object", kn, ref)
		}
		min, _ := mget(h, "spec", "minReplicas").(float64)
		max, _ := mget(h, "spec", "maxReplicas").(float64)
		if min < 1 || max < min {
			c.failf("%s: minReplicas %v, maxReplicas %v", kn, min, max)
		}
		if len(mlist(h, "spec", "metrics")) == 0 {
			c.failf("%s: no metrics", kn)
		}
	}
}

func (c *checker) checkServiceMonitors() {
	for _, sm := range c.objects("ServiceMonitor") {
		kn := kindName(sm)
		sel := mmap(sm, "spec", "selector", "matchLabels")
		var svcs []map[string]interface{}
		for _, s := range c.objects("Service") {
			if matches(sel, mmap(s, "metadata", "labels")) {
				svcs = append(svcs, s)
			}
		}
		if len(svcs) != 1 {
			c.failf("%s: selector %v matches %d Services, want 1", kn, sel, len(svcs))
			continue
		}
		names := map[string]bool{}
		for _, p := range mlist(svcs[0], "spec", "ports") {
			names[mstr(p, "name")] = true
		}
		for _, e := range mlist(sm, "spec", "endpoints") {
			if !names[mstr(e, "port")] {
				c.failf("%s: endpoint port %q is not a port of %s", kn, mstr(e, "port"), kindName(svcs[0]))
			}
		}
		ns := mstr(sm, "metadata", "namespace")
		if ns != "" && ns != c.rel.Namespace {
			found := false
			for _, n := range mlist(sm, "spec", "namespaceSelector", "matchNames") {
				if n == c.rel.Namespace {
					found = true
				}
			}
			if !found {
				c.failf("%s: in namespace %q without namespaceSelector for %q", kn, ns, c.rel.Namespace)
			}
		}
	}
}

func (c *checker) checkNetworkPolicies() {
	for _, np := range c.objects("NetworkPolicy") {
		kn := kindName(np)
		pods := c.selectedPods(mmap(np, "spec", "podSelector", "matchLabels"))
		if len(pods) != 1 {
			c.failf("%s: podSelector does not select the server pods", kn)
			continue
		}
		ports := podPorts(pods[0])
		for _, r := range mlist(np, "spec", "ingress") {
			for _, p := range mlist(r, "ports") {
				if !ports[portKey(mget(p, "port"))] {
					c.failf("%s: ingress port %v is not a container port", kn, mget(p, "port"))
				}
			}
		}
		types := map[string]bool{}
		for _, t := range mlist(np, "spec", "policyTypes") {
			types[t.(string)] = true
		}
		if !types["Ingress"] {
			c.failf("%s: policyTypes lacks Ingress", kn)
		}
		if types["Egress"] {
			dns := false
			for _, r := range mlist(np, "spec", "egress") {
				for _, p := range mlist(r, "ports") {
					if portKey(mget(p, "port")) == "53" {
						dns = true
					}
				}
			}
			if !dns {
				c.failf("%s: egress restricted without DNS (port 53)", kn)
			}
		}
	}
}

func (c *checker) checkConfigData() {
	for _, cm := range c.objects("ConfigMap") {
		for k, v := range mmap(cm, "data") {
			if _, ok := v.(string); !ok {
				c.failf("%s: data[%s] = %v (%T): must be a string", kindName(cm), k, v, v)
			}
		}
	}
	for _, s := range c.objects("Secret") {
		for k, v := range mmap(s, "data") {
			str, ok := v.(string)
			if !ok {
				c.failf("%s: data[%s] must be a string", kindName(s), k)
				continue
			}
			if _, err := base64.StdEncoding.DecodeString(str); err != nil {
				c.failf("%s: data[%s] is not base64: %v", kindName(s), k, err)
			}
		}
	}
}

// ---- Assertions of a case (path expressions) ------------------------------------------------

// lookupPath follows a path such as
//
//	spec.template.spec.containers[name=fleetca].args
//	metadata.labels["app.kubernetes.io/name"]
//	spec.ports[0].port
func lookupPath(v interface{}, p string) (interface{}, bool, error) {
	i := 0
	for i < len(p) {
		switch p[i] {
		case '.':
			i++
		case '[':
			end := strings.IndexByte(p[i:], ']')
			if end < 0 {
				return nil, false, fmt.Errorf("path %q: unclosed [", p)
			}
			inner := p[i+1 : i+end]
			i += end + 1
			switch {
			case strings.HasPrefix(inner, `"`):
				key, err := strconv.Unquote(inner)
				if err != nil {
					return nil, false, fmt.Errorf("path %q: %v", p, err)
				}
				m, ok := v.(map[string]interface{})
				if !ok {
					return nil, false, nil
				}
				if v, ok = m[key]; !ok {
					return nil, false, nil
				}
			case strings.Contains(inner, "="):
				kv := strings.SplitN(inner, "=", 2)
				l, ok := v.([]interface{})
				if !ok {
					return nil, false, nil
				}
				var found interface{}
				for _, e := range l {
					if fmt.Sprint(mget(e, kv[0])) == kv[1] {
						found = e
						break
					}
				}
				if found == nil {
					return nil, false, nil
				}
				v = found
			default:
				n, err := strconv.Atoi(inner)
				if err != nil {
					return nil, false, fmt.Errorf("path %q: bad index %q", p, inner)
				}
				l, ok := v.([]interface{})
				if !ok || n < 0 || n >= len(l) {
					return nil, false, nil
				}
				v = l[n]
			}
		default:
			end := strings.IndexAny(p[i:], ".[")
			if end < 0 {
				end = len(p) - i
			}
			key := p[i : i+end]
			i += end
			m, ok := v.(map[string]interface{})
			if !ok {
				return nil, false, nil
			}
			var present bool
			if v, present = m[key]; !present {
				return nil, false, nil
			}
		}
	}
	return v, true, nil
}

// Assert is one expectation of a case on the rendered objects.
type Assert struct {
	Kind     string      `json:"kind"`
	Name     string      `json:"name"`     // default: the only object of that kind
	Count    *int        `json:"count"`    // number of objects of that kind (and name, if given)
	Path     string      `json:"path"`     // with one of:
	Equals   interface{} `json:"equals"`   //   the value (compared as JSON)
	Contains interface{} `json:"contains"` //   an element of a list, or a substring of a string
	Excludes interface{} `json:"excludes"` //   not an element / substring
	Absent   bool        `json:"absent"`   //   the path does not exist
	Matches  string      `json:"matches"`  //   a regular expression the string value matches
}

func (a Assert) String() string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s", a.Kind)
	if a.Name != "" {
		fmt.Fprintf(&b, "/%s", a.Name)
	}
	if a.Path != "" {
		fmt.Fprintf(&b, " %s", a.Path)
	}
	return b.String()
}

func runAsserts(res *RenderResult, asserts []Assert) []string {
	var problems []string
	for _, a := range asserts {
		var objs []map[string]interface{}
		for _, m := range res.Manifests {
			if mstr(m.Object, "kind") == a.Kind && (a.Name == "" || mstr(m.Object, "metadata", "name") == a.Name) {
				objs = append(objs, m.Object)
			}
		}
		if a.Count != nil {
			if len(objs) != *a.Count {
				problems = append(problems, fmt.Sprintf("assert %s: %d objects, want %d", a, len(objs), *a.Count))
			}
			if a.Path == "" {
				continue
			}
		}
		if len(objs) != 1 {
			problems = append(problems, fmt.Sprintf("assert %s: %d objects match, want exactly 1", a, len(objs)))
			continue
		}
		v, ok, err := lookupPath(objs[0], a.Path)
		if err != nil {
			problems = append(problems, fmt.Sprintf("assert %s: %v", a, err))
			continue
		}
		switch {
		case a.Absent:
			if ok {
				problems = append(problems, fmt.Sprintf("assert %s: present (%v), want absent", a, v))
			}
		case !ok:
			problems = append(problems, fmt.Sprintf("assert %s: absent", a))
		case a.Equals != nil:
			if !jsonEqual(a.Equals, v) {
				problems = append(problems, fmt.Sprintf("assert %s: %s, want %s", a, toJSON(v), toJSON(a.Equals)))
			}
		case a.Contains != nil:
			if !containsValue(v, a.Contains) {
				problems = append(problems, fmt.Sprintf("assert %s: %s does not contain %s", a, toJSON(v), toJSON(a.Contains)))
			}
		case a.Excludes != nil:
			if containsValue(v, a.Excludes) {
				problems = append(problems, fmt.Sprintf("assert %s: %s contains %s", a, toJSON(v), toJSON(a.Excludes)))
			}
		case a.Matches != "":
			s, _ := v.(string)
			if !regexp.MustCompile(a.Matches).MatchString(s) {
				problems = append(problems, fmt.Sprintf("assert %s: %q does not match %q", a, s, a.Matches))
			}
		}
	}
	return problems
}

func containsValue(v, want interface{}) bool {
	switch t := v.(type) {
	case string:
		w, ok := want.(string)
		return ok && strings.Contains(t, w)
	case []interface{}:
		for _, e := range t {
			if jsonEqual(e, want) {
				return true
			}
		}
	case map[string]interface{}:
		if w, ok := want.(map[string]interface{}); ok {
			for k, x := range w {
				if !jsonEqual(t[k], x) {
					return false
				}
			}
			return true
		}
	}
	return false
}

// ---- The chart itself (what `helm lint` looks at, and the README) ---------------------------------

func lintChart(c *Chart, readme string) []string {
	var problems []string
	m := c.Metadata
	if m.APIVersion != "v2" {
		problems = append(problems, "Chart.yaml: apiVersion must be v2")
	}
	if m.Name == "" || m.Version == "" || m.AppVersion == "" {
		problems = append(problems, "Chart.yaml: name, version and appVersion are required")
	}
	if _, err := parseSemver(m.Version); err != nil {
		problems = append(problems, fmt.Sprintf("Chart.yaml: version %q is not SemVer 2: %v", m.Version, err))
	}
	if m.Type != "" && m.Type != "application" && m.Type != "library" {
		problems = append(problems, "Chart.yaml: type must be application or library")
	}
	// Every value is documented in the README's table.
	var leaves []string
	collectLeaves("", c.Values, &leaves)
	sort.Strings(leaves)
	for _, l := range leaves {
		if !strings.Contains(readme, "`"+l+"`") {
			problems = append(problems, fmt.Sprintf("README.md: value `%s` is not documented", l))
		}
	}
	return problems
}

func collectLeaves(prefix string, v interface{}, out *[]string) {
	m, ok := v.(map[string]interface{})
	if !ok || len(m) == 0 {
		*out = append(*out, prefix)
		return
	}
	for k, e := range m {
		p := k
		if prefix != "" {
			p = prefix + "." + k
		}
		collectLeaves(p, e, out)
	}
}
