package config

import (
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

// envPrefix starts every environment override's name.
const envPrefix = "MCPGUARD"

// envSetting is one setting that can be overridden from the environment.
type envSetting struct {
	name  string        // MCPGUARD_SERVER_ADDR
	path  path          // server.addr
	value reflect.Value // settable field
}

// envSettings walks v (a struct) by its yaml tags and returns every scalar
// and string-list setting. Maps and lists of structures are file-only and
// skipped.
func envSettings(v reflect.Value, name string, p path) []envSetting {
	var out []envSetting
	names, index := structFields(v.Type())
	for _, tag := range names {
		f := v.Field(index[tag])
		n := name + "_" + strings.ToUpper(tag)
		fp := p.field(tag)
		t := f.Type()
		switch {
		case t == durationType:
			out = append(out, envSetting{n, fp, f})
		case t.Kind() == reflect.Struct:
			out = append(out, envSettings(f, n, fp)...)
		case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.String,
			t.Kind() == reflect.String, t.Kind() == reflect.Bool,
			t.Kind() == reflect.Int, t.Kind() == reflect.Int64:
			out = append(out, envSetting{n, fp, f})
		}
	}
	return out
}

// EnvVars returns the names of every environment variable that overrides a
// setting (MCPGUARD_SERVER_ADDR, ...), sorted.
func EnvVars() []string {
	var names []string
	for _, s := range envSettings(reflect.ValueOf(Default()).Elem(), envPrefix, nil) {
		names = append(names, s.name)
	}
	slices.Sort(names)
	return names
}

// applyEnv overrides cfg's settings from env and records, in src, which
// variable set which setting path. Values are never echoed in errors: an
// environment variable may well hold something sensitive.
func applyEnv(cfg *Config, env func(string) (string, bool), src map[string]string) Errors {
	var errs Errors
	for _, s := range envSettings(reflect.ValueOf(cfg).Elem(), envPrefix, nil) {
		raw, ok := env(s.name)
		if !ok {
			continue
		}
		if msg := setFromEnv(s.value, raw); msg != "" {
			errs = append(errs, &FieldError{Env: s.name, Msg: msg})
			continue
		}
		src[s.path.String()] = s.name
	}
	return errs
}

// setFromEnv parses raw into v, returning a message on failure.
func setFromEnv(v reflect.Value, raw string) string {
	t := v.Type()
	switch {
	case t == durationType:
		d, err := time.ParseDuration(strings.TrimSpace(raw))
		if err != nil {
			return "must be a duration such as 30s or 5m"
		}
		v.SetInt(int64(d))
	case t.Kind() == reflect.String:
		v.SetString(raw)
	case t.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(strings.TrimSpace(raw))
		if err != nil {
			return "must be a boolean (true or false)"
		}
		v.SetBool(b)
	case t.Kind() == reflect.Int || t.Kind() == reflect.Int64:
		i, err := strconv.ParseInt(strings.TrimSpace(raw), 10, t.Bits())
		if err != nil {
			return "must be an integer"
		}
		v.SetInt(i)
	case t.Kind() == reflect.Slice:
		items := []string{}
		for item := range strings.SplitSeq(raw, ",") {
			if item = strings.TrimSpace(item); item != "" {
				items = append(items, item)
			}
		}
		s := reflect.MakeSlice(t, len(items), len(items))
		for i, item := range items {
			s.Index(i).SetString(item)
		}
		v.Set(s)
	}
	return ""
}
