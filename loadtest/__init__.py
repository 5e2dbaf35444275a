"""recserve load testing: locust scenario, open-loop benchmark, ANN comparison, HPA simulator."""
