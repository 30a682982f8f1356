package track

import "fmt"

// Resolve decides where to track: the configured tracking.mlflow_uri, else
// MLflow's own MLFLOW_TRACKING_URI (and MLFLOW_EXPERIMENT_NAME), else
// nowhere. A configured address that is not an MLflow server's is a usage
// error; one that only comes from the environment (set for other tools,
// say) is skipped with a warning, so it never stops a run.
func Resolve(uri, experiment string, getenv func(string) string) (s Settings, warning string, err error) {
	if experiment == "" {
		experiment = getenv("MLFLOW_EXPERIMENT_NAME")
	}
	if uri != "" {
		if _, err := NewClient(uri); err != nil {
			return Settings{}, "", fmt.Errorf("tracking.mlflow_uri: %v", err)
		}
		return Settings{URI: uri, Experiment: experiment}, "", nil
	}
	env := getenv("MLFLOW_TRACKING_URI")
	if env == "" {
		return Settings{}, "", nil
	}
	if _, err := NewClient(env); err != nil {
		return Settings{}, fmt.Sprintf("MLFLOW_TRACKING_URI: %v; not tracking this run", err), nil
	}
	return Settings{URI: env, Experiment: experiment}, "", nil
}
