"""Auto Scaling benchmark: a group's scale-out 0 → 5, from SetDesiredCapacity to five members
InService with their user data run (its marker on each console), against what a user would
compare it with: five bare qemu-system-x86_64 boots of the same kernel (same vCPUs, memory,
machine and accelerator: t3.micro) with a busybox-only initramfs, started together, until
all five printed their marker. Both in the same run, alternating. Then the same scale-out
from a `Hibernated` warm pool of five (its instances booted, user data run, hibernated):
SetDesiredCapacity → five members InService, resumed. Results are appended to
bench/RESULTS.md."""

import base64
import datetime
import importlib.util
import os
import platform
import statistics
import subprocess
import tempfile
import time


HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("launch_bench", os.path.join(HERE, "..", "launch", "bench.py"))
launch = importlib.util.module_from_spec(spec)
spec.loader.exec_module(launch)

RUNS = int(os.environ.get("BENCH_RUNS", "3"))
SIZE = 5
USER_DATA_MARKER = "BENCH-ASG-USER-DATA"


def bare_boots_together(kernel, initramfs, workdir, accel):
    """Five bare boots started at once: exec → the last marker."""
    logs = [os.path.join(workdir, f"bare-{n}.log") for n in range(SIZE)]
    for log in logs:
        if os.path.exists(log):
            os.remove(log)
    started = time.time()
    processes = [subprocess.Popen([
        "qemu-system-x86_64", "-machine", f"q35,accel={accel}", "-cpu", "max" if accel == "tcg" else "host",
        "-smp", str(launch.VCPUS), "-m", f"{launch.MEMORY_MIB}M", "-nodefaults", "-no-user-config",
        "-display", "none", "-kernel", kernel, "-initrd", initramfs, "-append", "console=ttyS0",
        "-chardev", f"file,id=console,path={log}", "-serial", "chardev:console",
    ], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for log in logs]
    try:
        return max(launch.wait_file_contains(log, launch.BARE_MARKER, timeout=600) for log in logs) - started
    finally:
        for process in processes:
            process.kill()
            process.wait()


def scale_out(autoscaling, ec2, data_dir, name):
    """SetDesiredCapacity 5 → five members InService with their user-data marker."""
    started = time.time()
    autoscaling.set_desired_capacity(AutoScalingGroupName=name, DesiredCapacity=SIZE)
    members = []
    deadline = started + 900
    while len(members) < SIZE and time.time() < deadline:
        group = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0]
        members = [m["InstanceId"] for m in group["Instances"] if m["LifecycleState"] == "InService"]
        time.sleep(0.05)
    in_service = time.time() - started
    for instance in members:
        launch.wait_file_contains(os.path.join(data_dir, "instances", instance, "serial.log"),
                                  USER_DATA_MARKER.encode(), timeout=900)
    user_data = time.time() - started
    autoscaling.set_desired_capacity(AutoScalingGroupName=name, DesiredCapacity=0)
    ec2.get_waiter("instance_terminated").wait(InstanceIds=members, WaiterConfig={"Delay": 1, "MaxAttempts": 600})
    while autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0]["Instances"]:
        time.sleep(0.2)
    return in_service, user_data


def warm_scale_out(autoscaling, name):
    """With a full Hibernated warm pool: SetDesiredCapacity 5 → five members InService."""
    def warm_ready():
        pool = autoscaling.describe_warm_pool(AutoScalingGroupName=name)["Instances"]
        return sum(m["LifecycleState"] == "Warmed:Hibernated" for m in pool) == SIZE
    deadline = time.time() + 900
    while not warm_ready() and time.time() < deadline:
        time.sleep(0.5)
    started = time.time()
    autoscaling.set_desired_capacity(AutoScalingGroupName=name, DesiredCapacity=SIZE)
    serving = 0
    while serving < SIZE and time.time() < deadline + 900:
        group = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0]
        serving = sum(m["LifecycleState"] == "InService" for m in group["Instances"])
        time.sleep(0.02)
    in_service = time.time() - started
    autoscaling.set_desired_capacity(AutoScalingGroupName=name, DesiredCapacity=0)
    return in_service


def main():
    workdir = tempfile.mkdtemp(prefix="nimbus-asg-bench-")
    data_dir = os.path.join(workdir, "data")
    cache = os.environ.get("NIMBUS_TEST_IMAGE_DIR", "/tmp/nimbus-test-images")
    subprocess.run([launch.BINARY, "image", "build", "--data-dir", data_dir, "--cache-dir", cache], check=True,
                   stdout=subprocess.DEVNULL)
    kernel = sorted(launch.glob.glob("/boot/vmlinuz-*-cloud-amd64"), key=launch.kernel_version)[-1]
    initramfs = launch.busybox_initramfs(workdir)
    server, port = launch.serve(data_dir)
    try:
        ec2, autoscaling = launch.client(port, "ec2"), launch.client(port, "autoscaling")
        ami = ec2.describe_images(Owners=["self"])["Images"][0]["ImageId"]
        user_data = f"#!/bin/sh\necho {USER_DATA_MARKER} > /dev/console\n"
        ec2.create_launch_template(LaunchTemplateName="bench", LaunchTemplateData={
            "ImageId": ami, "InstanceType": launch.INSTANCE_TYPE, "UserData": base64.b64encode(user_data.encode()).decode()})
        subnet = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
        autoscaling.create_auto_scaling_group(AutoScalingGroupName="bench", MinSize=0, MaxSize=SIZE, DesiredCapacity=0,
                                              LaunchTemplate={"LaunchTemplateName": "bench"}, VPCZoneIdentifier=subnet)
        # Warm-up: the accelerator probe and first-time costs are not part of a scale-out.
        warm = ec2.run_instances(ImageId=ami, InstanceType=launch.INSTANCE_TYPE, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
        launch.wait_file_contains(os.path.join(data_dir, "instances", warm, "serial.log"), launch.BOOT_MARKER)
        ec2.terminate_instances(InstanceIds=[warm])
        accel = launch.accelerator()
        load_before = os.getloadavg()[0]
        in_service, user_data_times, bare = [], [], []
        for _ in range(RUNS):
            serving, ran = scale_out(autoscaling, ec2, data_dir, "bench")
            in_service.append(serving)
            user_data_times.append(ran)
            bare.append(bare_boots_together(kernel, initramfs, workdir, accel))
        autoscaling.delete_auto_scaling_group(AutoScalingGroupName="bench", ForceDelete=True)
        ec2.create_launch_template(LaunchTemplateName="bench-warm", LaunchTemplateData={
            "ImageId": ami, "InstanceType": launch.INSTANCE_TYPE, "HibernationOptions": {"Configured": True},
            "UserData": base64.b64encode(user_data.encode()).decode()})
        autoscaling.create_auto_scaling_group(AutoScalingGroupName="bench-warm", MinSize=0, MaxSize=SIZE,
                                              DesiredCapacity=0, LaunchTemplate={"LaunchTemplateName": "bench-warm"},
                                              VPCZoneIdentifier=subnet)
        autoscaling.put_warm_pool(AutoScalingGroupName="bench-warm", PoolState="Hibernated")
        warm = [warm_scale_out(autoscaling, "bench-warm") for _ in range(RUNS)]
        report(accel, in_service, user_data_times, bare, warm, (load_before, os.getloadavg()[0]))
    finally:
        server.terminate()
        server.wait()
        launch.shutil.rmtree(workdir, ignore_errors=True)


def report(accel, in_service, user_data, bare, warm, load):
    median = statistics.median
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    runs = lambda values: ", ".join(f"{v:.2f}" for v in values)
    lines = [
        f"## Auto Scaling scale-out — {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%MZ')}",
        "",
        f"Machine: {os.cpu_count()} cores ({cpu}), {platform.platform()}; accelerator {accel}; {SIZE} × "
        f"{launch.INSTANCE_TYPE} ({launch.VCPUS} vCPU, {launch.MEMORY_MIB} MiB), nimbus-minimal image; median of "
        f"{len(bare)} runs, alternating. Baseline: {SIZE} bare qemu-system-x86_64 boots of the same kernel with a "
        "busybox-only initramfs, started together, until the last prints its marker. "
        f"Host load average {load[0]:.1f} at the start, {load[1]:.1f} at the end.",
        "",
        "| measure | nimbus | 5 bare kernel boots together | ratio |",
        "|---|---|---|---|",
        f"| SetDesiredCapacity 0 → 5: all user-data markers on the consoles | {median(user_data):.2f} s "
        f"({runs(user_data)}) | {median(bare):.2f} s ({runs(bare)}) | **{median(user_data) / median(bare):.2f}x** |",
        f"| SetDesiredCapacity 0 → 5: five members InService | {median(in_service):.2f} s ({runs(in_service)}) | — | "
        f"{median(in_service) / median(bare):.2f}x |",
        f"| SetDesiredCapacity 0 → 5 from a Hibernated warm pool: five members InService (resumed) | "
        f"{median(warm):.2f} s ({runs(warm)}) | — | {median(warm) / median(bare):.2f}x |",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    with open(os.path.join(launch.ROOT, "bench", "RESULTS.md"), "a") as f:
        f.write("\n" + text)


if __name__ == "__main__":
    main()
