#!/usr/bin/env python3
"""A sign-up worker in pika that keeps mqctl's retry contract.

It declares its queue as the tutorials do (durable=True only), consumes
with a prefetch window and manual acks, and handles a failed attempt the
way mqctl's reference workers do (internal/pattern, internal/worker):
attempt a of at most MAX_ATTEMPTS, counted in the mqctl-attempt header,
is published with confirms and mandatory to the delay queue
new_user_tasks.retry.min(a, STEPS) with mqctl-attempt a+1, and only then
acked; the delay queue's TTL sends it back to new_user_tasks.

One difference, to show the broker's side: after the last attempt it does
not publish to new_user_tasks.dlx itself (as internal/worker does) but
rejects the message without requeue, so RabbitMQ dead-letters it to
new_user_tasks.dlq through the policy mqctl applied (x-death says
"rejected").

    consumer.py [--url URL] --expect N [--fail-always IDS] [--fail-once IDS]
                [--max-attempts 3] [--steps 2] [--prefetch 10] [--timeout 120]

IDS are comma-separated user ids. Prints `retry ID ATTEMPT QUEUE`,
`done ID ATTEMPT` and `dead ID ATTEMPT` lines; stops once N distinct ids
are done or dead, and exits 1 on an error or when TIMEOUT seconds pass.
"""
import argparse
import datetime
import os
import sys
import time

import pika

QUEUE = 'new_user_tasks'
ATTEMPT = 'mqctl-attempt'  # header names: internal/pattern/pattern.go


def ids(s):
    return set(filter(None, s.split(',')))


def main():
    ap = argparse.ArgumentParser(description='Consume ' + QUEUE + ' with retries')
    ap.add_argument('--url', default=os.environ.get('AMQP_URL', 'amqp://guest:guest@localhost:5672/%2F'))
    ap.add_argument('--expect', type=int, required=True, help='stop after this many ids are done or dead')
    ap.add_argument('--fail-always', type=ids, default=set())
    ap.add_argument('--fail-once', type=ids, default=set())
    ap.add_argument('--max-attempts', type=int, default=3, help="the topology's retry.max_attempts")
    ap.add_argument('--steps', type=int, default=2, help='how many delay queues: min(len(backoff), max_attempts-1)')
    ap.add_argument('--prefetch', type=int, default=10)
    ap.add_argument('--timeout', type=float, default=120)
    args = ap.parse_args()

    connection = pika.BlockingConnection(pika.URLParameters(args.url))
    channel = connection.channel()
    channel.queue_declare(queue=QUEUE, durable=True)
    channel.basic_qos(prefetch_count=args.prefetch)
    # Retries go out on a channel of their own, with confirms, as in
    # internal/worker: the original is acked only once the copy is safe.
    retries = connection.channel()
    retries.confirm_delivery()

    finished = set()
    deadline = time.monotonic() + args.timeout
    for method, props, body in channel.consume(QUEUE, inactivity_timeout=1):
        if time.monotonic() > deadline:
            sys.exit('consumer: timed out after %ss with %d of %d ids finished' % (args.timeout, len(finished), args.expect))
        if method is None:
            continue
        headers = dict(props.headers or {})
        user_id = props.message_id
        attempt = max(int(headers.get(ATTEMPT, 1)), 1)
        failed = user_id in args.fail_always or (user_id in args.fail_once and attempt == 1)
        if not failed:
            channel.basic_ack(method.delivery_tag)
            print('done', user_id, attempt, flush=True)
            finished.add(user_id)
        elif attempt >= args.max_attempts or args.steps == 0:
            channel.basic_reject(method.delivery_tag, requeue=False)
            print('dead', user_id, attempt, flush=True)
            finished.add(user_id)
        else:
            delay_queue = '%s.retry.%d' % (QUEUE, min(attempt, args.steps))
            now = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')
            headers.setdefault('mqctl-first-failed-at', now)
            headers.update({
                ATTEMPT: attempt + 1,
                'mqctl-origin-queue': QUEUE,
                'mqctl-failure-reason': 'example failure',
                'mqctl-failed-at': now,
            })
            retries.basic_publish(
                exchange='',
                routing_key=delay_queue,
                body=body,
                properties=pika.BasicProperties(
                    delivery_mode=2,
                    content_type=props.content_type,
                    message_id=user_id,
                    headers=headers,
                ),
                mandatory=True,
            )
            channel.basic_ack(method.delivery_tag)
            print('retry', user_id, attempt, delay_queue, flush=True)
        if len(finished) >= args.expect:
            break
    channel.cancel()
    connection.close()


if __name__ == '__main__':
    try:
        main()
    except Exception as e:  # a 406 arrives as ChannelClosedByBroker
        sys.exit('consumer: %r' % (e,))
