// values.schema.json: the subset of JSON Schema (draft 7) the chart uses, with the error
// texts of github.com/xeipuuv/gojsonschema, which Helm 3 uses to validate values. A keyword
// outside the subset makes the validation fail loudly rather than pass silently.
package main

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strings"
)

var supportedKeywords = map[string]bool{
	"$schema": true, "title": true, "description": true, "type": true, "properties": true,
	"required": true, "enum": true, "minimum": true, "maximum": true, "additionalProperties": true,
	"items": true, "pattern": true, "minLength": true, "minItems": true, "default": true,
}

type schemaError struct {
	field string
	msg   string
}

func validateAgainstSchema(values map[string]interface{}, schemaJSON []byte) error {
	var schema map[string]interface{}
	if err := json.Unmarshal(schemaJSON, &schema); err != nil {
		return fmt.Errorf("values.schema.json: %v", err)
	}
	// Helm validates the values as JSON: round-trip them.
	b, err := json.Marshal(values)
	if err != nil {
		return err
	}
	var doc interface{}
	if err := json.Unmarshal(b, &doc); err != nil {
		return err
	}
	var errs []schemaError
	if err := validate(schema, doc, "(root)", &errs); err != nil {
		return err
	}
	if len(errs) == 0 {
		return nil
	}
	var sb strings.Builder
	for _, e := range errs {
		field := e.field
		if field != "(root)" {
			field = strings.TrimPrefix(field, "(root).")
		}
		sb.WriteString(fmt.Sprintf("- %s: %s\n", field, e.msg))
	}
	return fmt.Errorf("%s", sb.String())
}

func jsonType(v interface{}) string {
	switch t := v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case float64:
		if t == math.Trunc(t) && !math.IsInf(t, 0) {
			return "integer"
		}
		return "number"
	case string:
		return "string"
	case []interface{}:
		return "array"
	case map[string]interface{}:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

func typeMatches(want, got string) bool {
	return want == got || (want == "number" && got == "integer")
}

func validate(schema map[string]interface{}, v interface{}, at string, errs *[]schemaError) error {
	for k := range schema {
		if !supportedKeywords[k] {
			return fmt.Errorf("values.schema.json at %s: keyword %q is not supported by the render test (tests/helm/render/schema.go)", at, k)
		}
	}
	add := func(msg string) { *errs = append(*errs, schemaError{at, msg}) }
	if t, ok := schema["type"]; ok {
		var want []string
		switch tt := t.(type) {
		case string:
			want = []string{tt}
		case []interface{}:
			for _, x := range tt {
				want = append(want, x.(string))
			}
		}
		got := jsonType(v)
		match := false
		for _, w := range want {
			if typeMatches(w, got) {
				match = true
			}
		}
		if !match {
			add(fmt.Sprintf("Invalid type. Expected: %s, given: %s", strings.Join(want, "/"), got))
			return nil // gojsonschema stops at a type mismatch
		}
	}
	if e, ok := schema["enum"].([]interface{}); ok {
		found := false
		for _, x := range e {
			if jsonEqual(x, v) {
				found = true
			}
		}
		if !found {
			var allowed []string
			for _, x := range e {
				b, _ := json.Marshal(x)
				allowed = append(allowed, string(b))
			}
			add("must be one of the following: " + strings.Join(allowed, ", "))
		}
	}
	switch t := v.(type) {
	case float64:
		if m, ok := schema["minimum"].(float64); ok && t < m {
			add(fmt.Sprintf("Must be greater than or equal to %v", m))
		}
		if m, ok := schema["maximum"].(float64); ok && t > m {
			add(fmt.Sprintf("Must be less than or equal to %v", m))
		}
	case string:
		if m, ok := schema["minLength"].(float64); ok && float64(len([]rune(t))) < m {
			add(fmt.Sprintf("String length must be greater than or equal to %v", m))
		}
		if p, ok := schema["pattern"].(string); ok {
			re, err := regexp.Compile(p)
			if err != nil {
				return fmt.Errorf("values.schema.json at %s: pattern %q: %v", at, p, err)
			}
			if !re.MatchString(t) {
				add(fmt.Sprintf("Does not match pattern '%s'", p))
			}
		}
	case []interface{}:
		if m, ok := schema["minItems"].(float64); ok && float64(len(t)) < m {
			add(fmt.Sprintf("Array must have at least %v items", m))
		}
		if items, ok := schema["items"].(map[string]interface{}); ok {
			for i, e := range t {
				if err := validate(items, e, fmt.Sprintf("%s.%d", at, i), errs); err != nil {
					return err
				}
			}
		}
	case map[string]interface{}:
		props, _ := schema["properties"].(map[string]interface{})
		if req, ok := schema["required"].([]interface{}); ok {
			for _, r := range req {
				if _, ok := t[r.(string)]; !ok {
					*errs = append(*errs, schemaError{at, fmt.Sprintf("%s is required", r)})
				}
			}
		}
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			child := at + "." + k
			if ps, ok := props[k].(map[string]interface{}); ok {
				if err := validate(ps, t[k], child, errs); err != nil {
					return err
				}
				continue
			}
			switch ap := schema["additionalProperties"].(type) {
			case bool:
				if !ap {
					add(fmt.Sprintf("Additional property %s is not allowed", k))
				}
			case map[string]interface{}:
				if err := validate(ap, t[k], child, errs); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func jsonEqual(a, b interface{}) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}
