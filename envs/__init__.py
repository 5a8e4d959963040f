"""The dialogue world: MultiWOZ data, database, simulated users, tracker, evaluator, Gymnasium environments.

Importing ``envs`` registers ``vrb/MultiWOZ-Agenda-v0`` and ``vrb/MultiWOZ-VHUS-v0`` with Gymnasium.
"""

from gymnasium.envs.registration import register, registry

ENV_IDS = {"agenda": "vrb/MultiWOZ-Agenda-v0", "vhus": "vrb/MultiWOZ-VHUS-v0"}

for _simulator, _env_id in ENV_IDS.items():
    if _env_id not in registry:
        register(id=_env_id, entry_point="envs.dialogue_env:DialogueEnv", kwargs={"simulator": _simulator})
