package deploy

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

func decode(t *testing.T, path string, obj any) {
	t.Helper()
	docs := documents(t, path)
	if len(docs) == 0 {
		t.Fatalf("%s is empty", path)
	}
	if err := yaml.UnmarshalStrict(docs[0], obj); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// The api's root filesystem is read-only, but bulk imports spool the
// uploaded file to the temp directory: /tmp must be a writable volume.
func TestAPIHasWritableTmp(t *testing.T) {
	t.Parallel()
	var d appsv1.Deployment
	decode(t, "k8s/api.yaml", &d)
	spec := d.Spec.Template.Spec
	c := spec.Containers[0]
	if c.SecurityContext == nil || c.SecurityContext.ReadOnlyRootFilesystem == nil || !*c.SecurityContext.ReadOnlyRootFilesystem {
		return // a writable root has a writable /tmp
	}
	var vol string
	for _, m := range c.VolumeMounts {
		if m.MountPath == "/tmp" && !m.ReadOnly {
			vol = m.Name
		}
	}
	for _, v := range spec.Volumes {
		if v.Name == vol && v.EmptyDir != nil {
			return
		}
	}
	t.Fatal("api.yaml: the root filesystem is read-only and /tmp is not a writable emptyDir: every bulk import would fail")
}

// The migrate Job connects as the schema owner, through a URL of its own;
// api and worker keep DATABASE_URL, a role that owns nothing
// (docs/operations.md, "Least-privilege database roles").
func TestMigrateJobUsesTheOwnerURL(t *testing.T) {
	t.Parallel()
	var j batchv1.Job
	decode(t, "k8s/migrate-job.yaml", &j)
	var ref *corev1.SecretKeySelector
	for _, e := range j.Spec.Template.Spec.Containers[0].Env {
		if e.Name == "DATABASE_URL" && e.ValueFrom != nil {
			ref = e.ValueFrom.SecretKeyRef
		}
	}
	if ref == nil || ref.Name != "parcours-secrets" || ref.Key != "MIGRATE_DATABASE_URL" {
		t.Fatalf("migrate-job.yaml: DATABASE_URL comes from %+v; want parcours-secrets/MIGRATE_DATABASE_URL", ref)
	}
	var s corev1.Secret
	decode(t, "k8s/secret.example.yaml", &s)
	if s.StringData["MIGRATE_DATABASE_URL"] == "" || s.StringData["MIGRATE_DATABASE_URL"] == s.StringData["DATABASE_URL"] {
		t.Fatal("secret.example.yaml: MIGRATE_DATABASE_URL must be set, to another role than DATABASE_URL")
	}
}
