// Package deploy holds the container image, the compose file and the
// Kubernetes manifests; this test validates them offline so they cannot rot.
package deploy

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// documents splits a multi-document YAML file.
func documents(t *testing.T, path string) [][]byte {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, doc := range bytes.Split(raw, []byte("\n---\n")) {
		if len(bytes.TrimSpace(doc)) > 0 {
			out = append(out, doc)
		}
	}
	return out
}

// Every manifest decodes strictly into its Kubernetes API type (a misspelt
// field fails), and the workloads keep the properties operations rely on.
func TestKubernetesManifestsAreValid(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("k8s/*.yaml")
	if err != nil || len(files) < 5 {
		t.Fatalf("manifests: %v %v", files, err)
	}
	kinds := map[string]int{}
	for _, f := range files {
		for _, doc := range documents(t, f) {
			var meta struct {
				APIVersion string `json:"apiVersion"`
				Kind       string `json:"kind"`
			}
			if err := yaml.Unmarshal(doc, &meta); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			kinds[meta.Kind]++
			var obj any
			switch meta.APIVersion + "/" + meta.Kind {
			case "apps/v1/Deployment":
				obj = &appsv1.Deployment{}
			case "v1/Service":
				obj = &corev1.Service{}
			case "v1/ConfigMap":
				obj = &corev1.ConfigMap{}
			case "v1/Secret":
				obj = &corev1.Secret{}
			case "batch/v1/Job":
				obj = &batchv1.Job{}
			case "autoscaling/v2/HorizontalPodAutoscaler":
				obj = &autoscalingv2.HorizontalPodAutoscaler{}
			default:
				t.Fatalf("%s: unexpected %s %s", f, meta.APIVersion, meta.Kind)
			}
			if err := yaml.UnmarshalStrict(doc, obj); err != nil {
				t.Fatalf("%s: %s does not match the Kubernetes API: %v", f, meta.Kind, err)
			}
			if d, ok := obj.(*appsv1.Deployment); ok {
				checkPod(t, f, d.Spec.Template.Spec)
				if !labelsMatch(d.Spec.Selector.MatchLabels, d.Spec.Template.Labels) {
					t.Errorf("%s: selector does not match the pod labels", f)
				}
				if d.Name == "parcours-api" {
					c := d.Spec.Template.Spec.Containers[0]
					if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" || c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
						t.Errorf("%s: the api needs liveness on /healthz and readiness on /readyz", f)
					}
				}
			}
			if j, ok := obj.(*batchv1.Job); ok {
				checkPod(t, f, j.Spec.Template.Spec)
			}
		}
	}
	for _, k := range []string{"Deployment", "Service", "HorizontalPodAutoscaler", "Job", "ConfigMap", "Secret"} {
		if kinds[k] == 0 {
			t.Errorf("no %s among the manifests", k)
		}
	}
}

func checkPod(t *testing.T, file string, spec corev1.PodSpec) {
	t.Helper()
	if spec.SecurityContext == nil || spec.SecurityContext.RunAsNonRoot == nil || !*spec.SecurityContext.RunAsNonRoot {
		t.Errorf("%s: pods must run as non-root", file)
	}
	for _, c := range spec.Containers {
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
			t.Errorf("%s: container %s needs a CPU request and a memory limit", file, c.Name)
		}
		if len(c.Args) == 0 || !strings.Contains("api worker migrate", c.Args[0]) {
			t.Errorf("%s: container %s runs %v, not a parcours role", file, c.Name, c.Args)
		}
		refs := map[string]bool{}
		for _, e := range c.EnvFrom {
			if e.ConfigMapRef != nil {
				refs[e.ConfigMapRef.Name] = true
			}
			if e.SecretRef != nil {
				refs[e.SecretRef.Name] = true
			}
		}
		if !refs["parcours-config"] || !refs["parcours-secrets"] {
			t.Errorf("%s: container %s must read parcours-config and parcours-secrets", file, c.Name)
		}
	}
}

func labelsMatch(selector, labels map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return len(selector) > 0
}

// The compose file has the production topology and only known keys.
func TestComposeFileStructure(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	type service struct {
		Image       string            `json:"image"`
		Command     []string          `json:"command"`
		DependsOn   any               `json:"depends_on"`
		Environment map[string]string `json:"environment"`
		Ports       []string          `json:"ports"`
		Volumes     []string          `json:"volumes"`
		Healthcheck *struct {
			Test     []string `json:"test"`
			Interval string   `json:"interval"`
			Timeout  string   `json:"timeout"`
			Retries  int      `json:"retries"`
		} `json:"healthcheck"`
	}
	var c struct {
		Name     string             `json:"name"`
		Services map[string]service `json:"services"`
		Volumes  map[string]any     `json:"volumes"`
	}
	if err := yaml.UnmarshalStrict(raw, &c); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	for _, s := range []string{"postgres", "temporal", "temporal-ui", "migrate", "api", "worker"} {
		if _, ok := c.Services[s]; !ok {
			t.Errorf("compose.yaml lacks the %s service", s)
		}
	}
	for role, want := range map[string]string{"migrate": "migrate", "api": "api", "worker": "worker"} {
		if s := c.Services[role]; len(s.Command) == 0 || s.Command[0] != want || s.Image != "parcours:latest" {
			t.Errorf("service %s runs %v of %s", role, s.Command, s.Image)
		}
	}
	for _, role := range []string{"api", "worker"} {
		env := c.Services[role].Environment
		if env["DATABASE_URL"] == "" || env["TEMPORAL_ADDRESS"] == "" || env["PARCOURS_SECRET_KEY"] == "" {
			t.Errorf("service %s lacks DATABASE_URL, TEMPORAL_ADDRESS or PARCOURS_SECRET_KEY", role)
		}
	}
}

// The image is multi-stage and ends non-root, with the binary as entrypoint.
func TestDockerfile(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	s := string(raw)
	if strings.Count(s, "\nFROM ") < 1 || !strings.HasPrefix(strings.TrimSpace(s[strings.Index(s, "FROM"):]), "FROM golang") ||
		!strings.Contains(s, "USER nonroot") || !strings.Contains(s, `ENTRYPOINT ["/parcours"]`) || !strings.Contains(s, "CGO_ENABLED=0") {
		t.Fatalf("Dockerfile is not the documented multi-stage, non-root, static build:\n%s", s)
	}
}
