"""A scripted attack on dagnet as a hostile or careless user: hundreds of cases of bad input,
faults and misuse through the `dagnet` command and the Python API, each classified (see
harness.py). Run it all, with its counts:

    python -m tests.reliability.attack            # a table of findings and the counts (JSON)
    python -m tests.reliability.attack -k resume  # only the cases whose id holds 'resume'

tests/reliability/test_attack.py runs it in CI and asserts no tracebacks, no silent wrong
results, no hangs and no data lost.
"""
