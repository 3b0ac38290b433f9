package deploy

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// repoRoot is the Docker build context: `docker build -f deploy/Dockerfile .`
// from the repository root.
const repoRoot = ".."

// dockerfile is deploy/Dockerfile as instructions, continuation lines joined.
type dockerfile struct {
	lines []string
}

func readDockerfile(t *testing.T) dockerfile {
	t.Helper()
	f, err := os.Open("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var d dockerfile
	var cur strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if cur.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if strings.HasSuffix(line, `\`) {
			cur.WriteString(strings.TrimSuffix(line, `\`) + " ")
			continue
		}
		cur.WriteString(line)
		d.lines = append(d.lines, cur.String())
		cur.Reset()
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return d
}

// with returns the instructions that start with keyword (e.g. "COPY").
func (d dockerfile) with(keyword string) []string {
	var out []string
	for _, l := range d.lines {
		if strings.HasPrefix(l, keyword+" ") {
			out = append(out, strings.TrimSpace(strings.TrimPrefix(l, keyword+" ")))
		}
	}
	return out
}

// goVersion is the Go version go.mod asks for: its toolchain line if any,
// else its go line.
func goVersion(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if m := regexp.MustCompile(`(?m)^toolchain go(\S+)`).FindSubmatch(raw); m != nil {
		return string(m[1])
	}
	m := regexp.MustCompile(`(?m)^go (\S+)`).FindSubmatch(raw)
	if m == nil {
		t.Fatal("go.mod has no go line")
	}
	return string(m[1])
}

// buildRun is the RUN instruction that compiles the binary, with its -o
// path and package.
func (d dockerfile) buildRun(t *testing.T) (cmd, out, pkg string) {
	t.Helper()
	for _, r := range d.with("RUN") {
		if !strings.Contains(r, "go build") {
			continue
		}
		m := regexp.MustCompile(`-o (\S+) (\./\S+)$`).FindStringSubmatch(r)
		if m == nil {
			t.Fatalf("Dockerfile: cannot find `-o OUT ./PKG` at the end of %q", r)
		}
		return r, m[1], m[2]
	}
	t.Fatal("Dockerfile has no RUN ... go build")
	return "", "", ""
}

// The image is consistent with the repository: the builder runs go.mod's Go
// version, what it COPYs exists, it builds the parcours command, and the
// final stage runs the binary the build stage wrote.
func TestDockerfileMatchesRepository(t *testing.T) {
	t.Parallel()
	d := readDockerfile(t)

	from := d.with("FROM")
	if len(from) < 2 {
		t.Fatalf("Dockerfile has %d stages; want a build stage and a small runtime stage", len(from))
	}
	m := regexp.MustCompile(`^golang:([0-9.]+)\S* AS (\S+)$`).FindStringSubmatch(from[0])
	if m == nil {
		t.Fatalf("first stage %q is not `golang:<version> AS <name>`", from[0])
	}
	if want := goVersion(t); m[1] != want {
		t.Errorf("the build stage runs golang:%s but go.mod asks for Go %s: the official image sets GOTOOLCHAIN=local, pin golang:%s", m[1], want, want)
	}
	buildStage := m[2]

	for _, c := range d.with("COPY") {
		if strings.HasPrefix(c, "--from=") {
			continue
		}
		fields := strings.Fields(c)
		for _, src := range fields[:len(fields)-1] {
			if _, err := os.Stat(filepath.Join(repoRoot, src)); err != nil {
				t.Errorf("Dockerfile copies %s, which is not in the repository: %v", src, err)
			}
		}
	}

	_, out, pkg := d.buildRun(t)
	mainGo, err := os.ReadFile(filepath.Join(repoRoot, pkg, "main.go"))
	if err != nil || !regexp.MustCompile(`(?m)^package main$`).Match(mainGo) || !strings.Contains(string(mainGo), "var version") {
		t.Errorf("Dockerfile builds %s, which is not the parcours command (package main with var version): %v", pkg, err)
	}

	var copied string
	for _, c := range d.with("COPY") {
		if f := strings.Fields(c); len(f) == 3 && f[0] == "--from="+buildStage && f[1] == out {
			copied = f[2]
		}
	}
	if copied == "" {
		t.Fatalf("the runtime stage does not COPY --from=%s %s", buildStage, out)
	}
	if ep := d.with("ENTRYPOINT"); len(ep) != 1 || ep[0] != `["`+copied+`"]` {
		t.Errorf("ENTRYPOINT %v does not run the copied binary %s", ep, copied)
	}
}

// The build command of the Dockerfile, run here as written (less the
// container): the static binary builds and carries the version it is given.
// This is the closest to `docker build` a machine without Docker gets.
func TestDockerfileBuildCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles the whole binary")
	}
	t.Parallel()
	run, out, _ := readDockerfile(t).buildRun(t)
	bin := filepath.Join(t.TempDir(), "parcours")
	cmd := exec.Command("sh", "-c", strings.Replace(run, out, bin, 1))
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "VERSION=image-check")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", run, err, b)
	}
	got, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil || strings.TrimSpace(string(got)) != "parcours image-check" {
		t.Fatalf("the built binary says %q, %v; want the version passed as VERSION", got, err)
	}
}

// dockerignoreMatch reports whether a .dockerignore pattern excludes path
// (slash-separated, relative to the context root) or one of its parents, as
// Docker reads patterns: anchored at the root, * within a path element,
// ** across elements.
func dockerignoreMatch(pattern, path string) bool {
	pattern = strings.TrimPrefix(filepath.ToSlash(filepath.Clean(pattern)), "/")
	var re strings.Builder
	re.WriteString("^")
	for i := 0; i < len(pattern); i++ {
		switch {
		case strings.HasPrefix(pattern[i:], "**/"):
			re.WriteString("(.*/)?")
			i += 2
		case strings.HasPrefix(pattern[i:], "**"):
			re.WriteString(".*")
			i++
		case pattern[i] == '*':
			re.WriteString("[^/]*")
		case pattern[i] == '?':
			re.WriteString("[^/]")
		default:
			re.WriteString(regexp.QuoteMeta(pattern[i : i+1]))
		}
	}
	re.WriteString("$")
	rx := regexp.MustCompile(re.String())
	for p := path; p != "." && p != "/" && p != ""; p = filepath.ToSlash(filepath.Dir(p)) {
		if rx.MatchString(p) {
			return true
		}
	}
	return false
}

// The build context leaves out `parcours dev` state (credentials, the secret
// key, a PostgreSQL cluster) and nothing the build reads: go.mod, go.sum,
// the Go sources and the files they embed.
func TestDockerignore(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join(repoRoot, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	var patterns []string
	for _, l := range strings.Split(string(raw), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			if strings.HasPrefix(l, "!") {
				t.Fatalf(".dockerignore: exceptions (%s) are not supported by this check", l)
			}
			patterns = append(patterns, l)
		}
	}
	excluded := func(path string) string {
		for _, p := range patterns {
			if dockerignoreMatch(p, path) {
				return p
			}
		}
		return ""
	}
	for _, secret := range []string{".parcours/credentials.env", ".parcours/secret.key", ".git/config"} {
		if excluded(secret) == "" {
			t.Errorf(".dockerignore lets %s into the build context", secret)
		}
	}

	needed := []string{"go.mod", "go.sum"}
	embed := regexp.MustCompile(`(?m)^//go:embed (.+)$`)
	err = filepath.WalkDir(repoRoot, func(path string, e os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(repoRoot, path)
		rel = filepath.ToSlash(rel)
		if e.IsDir() {
			if rel == ".git" || rel == ".parcours" || e.Name() == "testdata" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(rel, ".go") || strings.HasSuffix(rel, "_test.go") {
			return nil
		}
		needed = append(needed, rel)
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range embed.FindAllStringSubmatch(string(src), -1) {
			for _, glob := range strings.Fields(m[1]) {
				files, _ := filepath.Glob(filepath.Join(filepath.Dir(path), glob))
				for _, f := range files {
					r, _ := filepath.Rel(repoRoot, f)
					needed = append(needed, filepath.ToSlash(r))
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(needed) < 50 {
		t.Fatalf("found only %d build inputs; the walk is broken", len(needed))
	}
	for _, n := range needed {
		if p := excluded(n); p != "" {
			t.Errorf(".dockerignore pattern %q leaves %s out of the build context; the image would not build", p, n)
		}
	}
}
