package kubernetes

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/openeas/openeas/internal/scheduler"
)

// fatalWaiting are container waiting reasons that no amount of waiting fixes: the deploy fails
// at once with the reason quoted, instead of running into ReadyTimeout.
var fatalWaiting = map[string]bool{
	"ImagePullBackOff":           true,
	"InvalidImageName":           true,
	"ErrImageNeverPull":          true,
	"CreateContainerConfigError": true,
	"CreateContainerError":       true,
	"RunContainerError":          true,
	"CrashLoopBackOff":           true,
}

// awaitRollout waits until the cluster runs exactly d (template hash), every pod ready and
// routed and none of another version left, or returns why it cannot.
func (b *Backend) awaitRollout(ctx context.Context, d scheduler.Deployment, hash string) error {
	deadline := time.NewTimer(b.opts.ReadyTimeout)
	defer deadline.Stop()
	// Informer events drive the checks; the ticker only bounds how stale a check can be.
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for {
		wake := b.wake()
		done, err := b.rolloutDone(d, hash)
		if err != nil || done {
			return err
		}
		select {
		case <-wake:
		case <-tick.C:
		case <-deadline.C:
			return fmt.Errorf("pods not ready after %s: %s", b.opts.ReadyTimeout, b.whyNotReady(d))
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (b *Backend) rolloutDone(d scheduler.Deployment, hash string) (bool, error) {
	obj := ObjectName(d.Service)
	dep, err := b.deploys.Deployments(b.ns).Get(obj)
	if err != nil || dep.Annotations[AnnotationTemplate] != hash || dep.Spec.Replicas == nil || int(*dep.Spec.Replicas) != d.Replicas {
		return false, nil // the cache has not seen our write yet
	}
	for _, c := range dep.Status.Conditions {
		switch {
		case c.Type == appsv1.DeploymentReplicaFailure && c.Status == corev1.ConditionTrue:
			return false, fmt.Errorf("Kubernetes cannot create pods: %s: %s", c.Reason, c.Message)
		case c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse && c.Reason == "ProgressDeadlineExceeded" &&
			dep.Status.ObservedGeneration >= dep.Generation:
			return false, fmt.Errorf("pods never became ready: %s: %s%s", c.Reason, c.Message, suffix(b.whyNotReady(d)))
		}
	}
	ver := strconv.Itoa(d.Version)
	for _, p := range b.servicePods(obj) {
		if p.Labels[LabelVersion] != ver || p.DeletionTimestamp != nil {
			continue
		}
		if why := fatalProblem(p); why != "" {
			return false, fmt.Errorf("pod %s: %s", p.Name, why)
		}
	}
	n := int32(d.Replicas)
	st := dep.Status
	if st.ObservedGeneration < dep.Generation || st.UpdatedReplicas != n || st.ReadyReplicas != n ||
		st.AvailableReplicas != n || st.Replicas != n {
		return false, nil
	}
	eps := b.routedEndpoints(d.Service)
	if len(eps) != d.Replicas {
		return false, nil
	}
	for _, e := range eps {
		if e.Version != 0 && e.Version != d.Version {
			return false, nil
		}
	}
	return true, nil
}

func (b *Backend) routedEndpoints(name string) []scheduler.Endpoint {
	b.mu.Lock()
	defer b.mu.Unlock()
	if s := b.svcs[name]; s != nil {
		return append([]scheduler.Endpoint(nil), s.routed...)
	}
	return nil
}

// whyNotReady describes the first problem of a pod of d's version, or the Deployment's.
func (b *Backend) whyNotReady(d scheduler.Deployment) string {
	obj := ObjectName(d.Service)
	ver := strconv.Itoa(d.Version)
	n := 0
	for _, p := range b.servicePods(obj) {
		if p.Labels[LabelVersion] != ver || p.DeletionTimestamp != nil {
			continue
		}
		n++
		if why := podProblem(p); why != "" {
			return fmt.Sprintf("pod %s: %s", p.Name, why)
		}
	}
	dep, err := b.deploys.Deployments(b.ns).Get(obj)
	if err != nil {
		return "Deployment " + obj + " not found"
	}
	s := fmt.Sprintf("%d pod(s) of version %d exist; Deployment %s has %d updated, %d ready of %d",
		n, d.Version, obj, dep.Status.UpdatedReplicas, dep.Status.ReadyReplicas, d.Replicas)
	for _, c := range dep.Status.Conditions {
		if c.Status != corev1.ConditionTrue || c.Type == appsv1.DeploymentReplicaFailure {
			s += fmt.Sprintf("; %s=%s %s: %s", c.Type, c.Status, c.Reason, c.Message)
		}
	}
	return s
}

func suffix(s string) string {
	if s == "" {
		return ""
	}
	return " (" + s + ")"
}

// fatalProblem returns why p can never become ready, or "".
func fatalProblem(p *corev1.Pod) string {
	for _, list := range [][]corev1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses} {
		for _, cs := range list {
			if w := cs.State.Waiting; w != nil && fatalWaiting[w.Reason] {
				return containerWhy(cs)
			}
		}
	}
	return ""
}

// podProblem says, in Kubernetes' words, why p is not ready; "" when it is.
func podProblem(p *corev1.Pod) string {
	if why := fatalProblem(p); why != "" {
		return why
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
			return fmt.Sprintf("not scheduled: %s: %s", c.Reason, c.Message)
		}
	}
	for _, list := range [][]corev1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses} {
		for _, cs := range list {
			if why := containerWhy(cs); why != "" {
				return why
			}
		}
	}
	if p.Status.Phase == corev1.PodFailed {
		return fmt.Sprintf("pod failed: %s: %s", p.Status.Reason, p.Status.Message)
	}
	if !podReady(p) && p.Status.Phase == corev1.PodRunning {
		return "running but not ready (GET /ready does not answer 200 yet)"
	}
	return ""
}

func containerWhy(cs corev1.ContainerStatus) string {
	var parts []string
	if w := cs.State.Waiting; w != nil && w.Reason != "" && w.Reason != "ContainerCreating" && w.Reason != "PodInitializing" {
		parts = append(parts, strings.TrimSuffix(fmt.Sprintf("%s: %s", w.Reason, w.Message), ": "))
	}
	if t := cs.State.Terminated; t != nil && t.ExitCode != 0 {
		parts = append(parts, termination("exited", t))
	} else if t := cs.LastTerminationState.Terminated; t != nil && t.ExitCode != 0 {
		parts = append(parts, termination("last exit", t))
	}
	if len(parts) == 0 {
		return ""
	}
	return fmt.Sprintf("container %s: %s", cs.Name, strings.Join(parts, "; "))
}

func termination(what string, t *corev1.ContainerStateTerminated) string {
	s := fmt.Sprintf("%s with code %d", what, t.ExitCode)
	if t.Reason != "" {
		s += " (" + t.Reason + ")"
	}
	if m := strings.TrimSpace(t.Message); m != "" {
		if len(m) > 500 {
			m = "…" + m[len(m)-500:]
		}
		s += ": " + m
	}
	return s
}
