package kubernetes

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/openeas/openeas/internal/scheduler"
)

// Labels and annotations on every object this backend makes. Label values must be DNS-label
// like, and EAS names may hold '_', so the service's own name lives in an annotation and the
// label carries the object name derived from it.
const (
	LabelManagedBy = "app.kubernetes.io/managed-by" // = ManagedBy on every object
	ManagedBy      = "openeas"
	LabelService   = "openeas.io/service" // = ObjectName(service)
	LabelVersion   = "openeas.io/version" // service version of a pod template / pod
	LabelRole      = "openeas.io/role"    // "service" (root Secret, Deployment, Service) or "plugin" (Job)

	AnnotationService  = "openeas.io/service-name"  // the EAS service name, as the user wrote it
	AnnotationBundle   = "openeas.io/bundle"        // bundle digest the pods serve
	AnnotationTemplate = "openeas.io/template-hash" // hash of the desired pod template
	AnnotationVersion  = "openeas.io/version"       // service version the Deployment runs

	// DefaultNodeSelectorKey is the node label that metadata "resource" (an EAS resource
	// group) selects: pods of a service with "resource": "gpu-a10" run on nodes labelled
	// openeas.io/resource-group=gpu-a10.
	DefaultNodeSelectorKey = "openeas.io/resource-group"

	// GPUResource is the extended resource NVIDIA's device plugin advertises.
	GPUResource corev1.ResourceName = "nvidia.com/gpu"

	// SecretTokenKey is the data key of the service token in the service's root Secret.
	SecretTokenKey = "token"

	WorkerPort     = 8080
	bundleMount    = "/eas/bundle"
	objectPrefix   = "eas-"
	maxObjectName  = 63 // Service names are DNS-1035 labels
	containerName  = "worker"
	fetchContainer = "fetch-bundle"
)

var dnsLabelUnsafe = regexp.MustCompile(`[^a-z0-9-]`)

// ObjectName is the name of the Kubernetes objects of an EAS service: "eas-" followed by the
// name with '_' turned into '-'. Names that would exceed 63 characters or end in '-' are cut
// and suffixed with a hash of the full name, so two services never share objects.
func ObjectName(service string) string {
	n := objectPrefix + dnsLabelUnsafe.ReplaceAllString(strings.ReplaceAll(service, "_", "-"), "-")
	if len(n) <= maxObjectName && !strings.HasSuffix(n, "-") && n == objectPrefix+strings.ReplaceAll(service, "_", "-") {
		return n
	}
	sum := sha256.Sum256([]byte(service))
	h := hex.EncodeToString(sum[:])[:10]
	n = strings.TrimRight(n[:min(len(n), maxObjectName-len(h)-1)], "-")
	return n + "-" + h
}

// Resources is what one instance of a service asks the cluster for, from service.json.
type Resources struct {
	CPU      int    // metadata.cpu: cores (requests = limits); 0 = none
	MemoryMB int    // metadata.memory: MiB (requests = limits); 0 = none
	GPU      int    // metadata.gpu: nvidia.com/gpu
	Group    string // "resource": the resource group, a node selector value
}

func (r Resources) requirements() (corev1.ResourceRequirements, error) {
	var rr corev1.ResourceRequirements
	list := corev1.ResourceList{}
	if r.CPU < 0 || r.MemoryMB < 0 || r.GPU < 0 {
		return rr, fmt.Errorf("resources: cpu %d, memory %d, gpu %d: expected 0 or more", r.CPU, r.MemoryMB, r.GPU)
	}
	if r.CPU > 0 {
		list[corev1.ResourceCPU] = *resource.NewQuantity(int64(r.CPU), resource.DecimalSI)
	}
	if r.MemoryMB > 0 {
		list[corev1.ResourceMemory] = *resource.NewQuantity(int64(r.MemoryMB)<<20, resource.BinarySI)
	}
	if r.GPU > 0 {
		list[GPUResource] = *resource.NewQuantity(int64(r.GPU), resource.DecimalSI)
	}
	if len(list) > 0 {
		// Requests equal limits: an instance gets exactly what service.json says (Guaranteed
		// QoS when cpu and memory are both given), as on EAS.
		rr.Requests, rr.Limits = list, list.DeepCopy()
	}
	return rr, nil
}

func (o *Options) nodeSelector(r Resources) (map[string]string, error) {
	if r.Group == "" {
		return nil, nil
	}
	if errs := validation.IsValidLabelValue(r.Group); len(errs) > 0 {
		return nil, fmt.Errorf("resource %q cannot select nodes (label %s): %s", r.Group, o.NodeSelectorKey, strings.Join(errs, "; "))
	}
	return map[string]string{o.NodeSelectorKey: r.Group}, nil
}

// BundleDigest is the digest of a sealed bundle directory (DATA/bundles/<hex>).
func BundleDigest(dir string) (string, error) {
	h := filepath.Base(filepath.Clean(dir))
	if len(h) != 64 || strings.Trim(h, "0123456789abcdef") != "" {
		return "", fmt.Errorf("bundle directory %s: expected DATA/bundles/<hex sha256>", dir)
	}
	return "sha256:" + h, nil
}

func labels(obj, role string) map[string]string {
	return map[string]string{LabelManagedBy: ManagedBy, LabelService: obj, LabelRole: role}
}

func ownerRef(root *corev1.Secret) []metav1.OwnerReference {
	return []metav1.OwnerReference{{
		// No blockOwnerDeletion: it would need update rights on secrets/finalizers where
		// OwnerReferencesPermissionEnforcement is on, and deletion runs in the background.
		APIVersion: "v1", Kind: "Secret", Name: root.Name, UID: root.UID,
	}}
}

// rootSecret is the object every other object of a service is owned by: deleting it deletes
// them all (Kubernetes' garbage collector). It holds the service token.
func rootSecret(ns, service string, token *string) *corev1.Secret {
	obj := ObjectName(service)
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name: obj, Namespace: ns, Labels: labels(obj, "service"),
			Annotations: map[string]string{AnnotationService: service},
		},
		Type: corev1.SecretTypeOpaque,
	}
	if token != nil {
		s.Data = map[string][]byte{SecretTokenKey: []byte(*token)}
	}
	return s
}

func desiredService(ns, service string, root *corev1.Secret) *corev1.Service {
	obj := ObjectName(service)
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{
			Name: obj, Namespace: ns, Labels: labels(obj, "service"),
			Annotations: map[string]string{AnnotationService: service}, OwnerReferences: ownerRef(root),
		},
		Spec: corev1.ServiceSpec{
			// Pods of every version: during a rolling update both serve.
			Selector: map[string]string{LabelService: obj, LabelManagedBy: ManagedBy},
			Ports: []corev1.ServicePort{{
				Name: "http", Port: WorkerPort, TargetPort: intstr.FromString("http"), Protocol: corev1.ProtocolTCP,
			}},
		},
	}
}

// desiredDeployment is the Deployment running d. Its pod template depends only on the
// version, bundle and settings (never on replicas), and its hash is recorded, so that an
// Apply that only scales never restarts a pod.
func (o *Options) desiredDeployment(d scheduler.Deployment, digest string, res Resources, root *corev1.Secret) (*appsv1.Deployment, error) {
	obj := ObjectName(d.Service)
	rr, err := res.requirements()
	if err != nil {
		return nil, err
	}
	sel, err := o.nodeSelector(res)
	if err != nil {
		return nil, err
	}
	env, err := envVars(d.Env)
	if err != nil {
		return nil, err
	}
	// The fixed flags come last: with Go's flag package the last occurrence wins.
	args := append(append([]string{}, d.Args...),
		"--bundle", bundleMount, "--name", d.Service,
		"--listen", fmt.Sprintf("0.0.0.0:%d", WorkerPort), "--allow-remote")
	var fetchEnv []corev1.EnvFromSource
	if o.ObjectStoreSecret != "" {
		fetchEnv = []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: o.ObjectStoreSecret}}}}
	}
	podLabels := labels(obj, "service")
	podLabels[LabelVersion] = strconv.Itoa(d.Version)
	tmpl := corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{
			Labels:      podLabels,
			Annotations: map[string]string{AnnotationService: d.Service, AnnotationBundle: digest},
		},
		Spec: corev1.PodSpec{
			// Workers never talk to the API server.
			AutomountServiceAccountToken: new(false),
			ServiceAccountName:           o.WorkerServiceAccount,
			NodeSelector:                 sel,
			// Long enough for in-flight requests to finish after the endpoint is withdrawn.
			TerminationGracePeriodSeconds: new(int64(60)),
			SecurityContext:               &corev1.PodSecurityContext{RunAsNonRoot: new(true)},
			InitContainers: []corev1.Container{{
				Name: fetchContainer, Image: o.Image, ImagePullPolicy: o.ImagePullPolicy,
				Command:      append(append([]string{}, o.FetchBundleCommand...), "--digest", digest, "--dir", bundleMount),
				EnvFrom:      fetchEnv,
				VolumeMounts: []corev1.VolumeMount{{Name: "bundle", MountPath: bundleMount}},
			}},
			Containers: []corev1.Container{{
				Name: containerName, Image: o.Image, ImagePullPolicy: o.ImagePullPolicy,
				Command: append([]string{}, o.WorkerCommand...), Args: args, Env: env,
				Ports:     []corev1.ContainerPort{{Name: "http", ContainerPort: WorkerPort, Protocol: corev1.ProtocolTCP}},
				Resources: rr,
				ReadinessProbe: &corev1.Probe{
					ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/ready", Port: intstr.FromString("http")}},
					PeriodSeconds: 2, FailureThreshold: 3,
				},
				LivenessProbe: &corev1.Probe{
					ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString("http")}},
					PeriodSeconds: 10, FailureThreshold: 6, TimeoutSeconds: 5,
				},
				// Endpoints are withdrawn asynchronously: keep serving a few seconds after the
				// pod is marked terminating so no router sends to a closed socket.
				Lifecycle:                &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: 5}}},
				VolumeMounts:             []corev1.VolumeMount{{Name: "bundle", MountPath: bundleMount, ReadOnly: true}},
				TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
			}},
			Volumes: []corev1.Volume{{Name: "bundle", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
		},
	}
	hash, err := templateHash(tmpl)
	if err != nil {
		return nil, err
	}
	replicas := int32(d.Replicas)
	// Capacity never drops: a new pod must be ready before an old one goes.
	surge, unavailable := intstr.FromString("25%"), intstr.FromInt32(0)
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{
			Name: obj, Namespace: o.Namespace, Labels: labels(obj, "service"),
			Annotations: map[string]string{
				AnnotationService: d.Service, AnnotationVersion: strconv.Itoa(d.Version),
				AnnotationBundle: digest, AnnotationTemplate: hash,
			},
			OwnerReferences: ownerRef(root),
		},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{LabelService: obj, LabelManagedBy: ManagedBy}},
			Template: tmpl,
			Strategy: appsv1.DeploymentStrategy{
				Type:          appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &surge, MaxUnavailable: &unavailable},
			},
			ProgressDeadlineSeconds: new(int32(max(1, o.ReadyTimeout.Seconds()))),
			RevisionHistoryLimit:    new(int32(2)),
		},
	}, nil
}

func templateHash(t corev1.PodTemplateSpec) (string, error) {
	b, err := json.Marshal(t)
	if err != nil {
		return "", fmt.Errorf("hash pod template: %w", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:16], nil
}

func envVars(kvs []string) ([]corev1.EnvVar, error) {
	var out []corev1.EnvVar
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("deployment env %q: expected KEY=value", kv)
		}
		out = append(out, corev1.EnvVar{Name: k, Value: v})
	}
	return out, nil
}
