"""The benchmarks: what each one is (spec), the table of the six (table), the hooks a task module
provides (contract) and v1's document order and few-shot draws (fewshot)."""
