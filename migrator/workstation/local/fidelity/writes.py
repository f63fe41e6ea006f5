"""The applications on standalone servers write (SCENARIOS.md, "Live change while a migration runs").

Each target's application appends numbered writes, `writes_per_second`, to the first data volume
of whichever instance its address names at that moment, and acknowledges them, but only while that
instance accepts writes: running, not quiesced by the migration's commands, not in a write freeze.
The data lives on the simulated EBS volumes as ranges of write numbers, and travels exactly as EBS
data does: a volume moved to another instance keeps it; a snapshot holds the volume's data as it
was when the snapshot started; a volume created from a snapshot starts with the snapshot's data.

Cheap by design: no clock tick per write. Writes since the last look are added when something that
changes where they go happens (a stop, start, address move, snapshot, volume move, quiesce), and
at the end of the run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from moto.ec2.models import elastic_block_store as ebs_models

from migrator.workstation.local.fidelity.context import Context


@dataclass
class Ledger:
    rate: float
    device: str  # the data volume's device on the original and on its replacement
    last: float
    carry: float = 0.0
    acknowledged: int = 0  # writes 1..acknowledged were acknowledged


@dataclass
class Writes:
    ctx: Context
    ec2: object  # fidelity EC2
    ledgers: dict[str, Ledger] = field(default_factory=dict)  # by target

    def track(self, target: str, rate: float, data_device: str | None) -> None:
        """A server without data volumes keeps nothing local: its application is stateless here."""
        if rate > 0 and data_device:
            self.ledgers[target] = Ledger(rate=rate, device=data_device, last=self.ctx.clock.now())

    def install(self) -> None:
        writes = self

        def remember_data(snapshot):
            writes.accrue()  # the snapshot holds the data written up to its start
            snapshot.sim_writes = list(getattr(snapshot.volume, "sim_writes", []))

        def restore_data(volume):
            snapshot = volume.ec2_backend.snapshots.get(volume.snapshot_id) if volume.snapshot_id else None
            volume.sim_writes = list(getattr(snapshot, "sim_writes", []))

        self.ctx.patches.after_init(ebs_models.Snapshot, remember_data)
        self.ctx.patches.after_init(ebs_models.Volume, restore_data)

    def _data_volume(self, instance, ledger: Ledger):
        mapping = instance.block_device_mapping.get(ledger.device)
        return instance.ec2_backend.volumes.get(mapping.volume_id) if mapping else None

    def accrue(self) -> None:
        """The writes since the last look go where the address pointed meanwhile (nothing changed it
        in between: every change calls this first)."""
        now = self.ctx.clock.now()
        with self.ctx.lock:
            for target, ledger in self.ledgers.items():
                due = ledger.rate * max(0.0, now - ledger.last) + ledger.carry
                count, ledger.carry, ledger.last = int(due), due - int(due), now
                instance = self.ec2.serving(target)
                if count == 0 or instance is None or not self.accepts(instance, target):
                    continue  # refused: the clients see errors, nothing is acknowledged
                volume = self._data_volume(instance, ledger)
                if volume is None:
                    continue
                first = ledger.acknowledged + 1
                volume.sim_writes = [*getattr(volume, "sim_writes", []), (first, first + count)]
                ledger.acknowledged += count

    def accepts(self, instance, target: str) -> bool:
        return (instance.state_code == 16 and not getattr(instance, "sim_quiesced", False)
                and target not in self.ec2.frozen)

    def report(self, target: str) -> dict | None:
        """acknowledged, on the instance that serves at the end, lost."""
        ledger = self.ledgers.get(target)
        if ledger is None:
            return None
        self.accrue()
        instance = self.ec2.serving(target)
        volume = self._data_volume(instance, ledger) if instance is not None else None
        held = sum(max(0, min(end, ledger.acknowledged + 1) - start) for start, end in getattr(volume, "sim_writes", []))
        return {"acknowledged": ledger.acknowledged, "on_serving_instance": held, "lost": ledger.acknowledged - held}
