"""Evaluation content built on `pilothouse.evals`: users of the framework, not part of it.

- `builtin`: ten offline scenarios with known answers (``pilothouse eval builtin``),
  their reference models (``builtin:oracle``, ``builtin:null``) and ablations;
- `heldout`: the same kinds of question that nobody tuned against (``heldout``);
- `baselines`: the naive JSON-action construction the suites compare against
  (``builtin-naive``, ``heldout-naive``);
- `tau_retail`: tau-bench's retail tasks over an in-memory shop (``tau-retail``).
- `agentdojo`: AgentDojo v1's suites with its attacks and checks, and a scripted
  adversary (``agentdojo-workspace``, ``-travel``, ``-slack``, ``-banking``; extra ``agentdojo``).
- `bfcl`: the Berkeley Function Calling Leaderboard's categories, scored by its own
  AST checker (``bfcl-simple_python``, ...; docs/bfcl.md).
- `teams`: cases where specialisation matters (research, write and review; a support
  case passed between specialists), for teams with pass^k (``teams``).

The suites reach ``pilothouse eval NAME`` through the ``pilothouse.suites`` entry
points of this distribution; ``package.module:attr`` works as for any suite.
"""
